# Redis for the controller: a unix socket for the daemon (no TCP port open to the network),
# snapshots rare enough for flash, and a memory cap. Replaces meta-oe's redis.conf.
FILESEXTRAPATHS:prepend:voltage := "${THISDIR}/files:"

SRC_URI:append:voltage = " file://redis-voltage-tmpfiles.conf"

do_install:append:voltage() {
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${UNPACKDIR}/redis-voltage-tmpfiles.conf ${D}${nonarch_libdir}/tmpfiles.d/redis-voltage.conf
}

FILES:${PN}:append:voltage = " ${nonarch_libdir}/tmpfiles.d/redis-voltage.conf"
