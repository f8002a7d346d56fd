# nooelint: oelint.var.bbclassextend - the daemon runs on the controller only; no native or SDK variant is used
SUMMARY = "VoltageEMS edge firmware daemon"
DESCRIPTION = "One daemon, voltage, that polls field devices (Modbus TCP/RTU) and keeps \
               their live values in a local Redis, with history, alarms, rules, models and \
               northbound forwarding. Also installs the default configuration in /etc/voltage, \
               the systemd units, the serial-port udev rule and the A/B update health gate."
HOMEPAGE = "https://example.invalid/voltage-firmware"
BUGTRACKER = "https://example.invalid/voltage-firmware/issues"
CVE_PRODUCT = "voltageems:voltage"
SECTION = "console/network"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

PV = "0.1.0+git"

# The source is this repository. A release pins VOLTAGE_SRCREV (kas: local_conf_header) to
# its tagged commit, and voltage-crates.inc must be generated from that commit's Cargo.lock
# (scripts/yocto-crates); cargo builds --frozen, so a mismatch fails at do_compile.
SRC_URI = "git://example.invalid/voltage-firmware.git;protocol=https;branch=main \
           file://voltage.service \
           file://voltage-health-gate.service \
           file://voltage-health-gate \
           file://voltage-rauc-post-install \
           file://99-voltage-serial.rules \
           file://voltage-tmpfiles.conf \
           file://config/voltage.yaml \
           file://config/comsrv/comsrv.yaml \
           file://config/hissrv/hissrv.yaml \
           "
VOLTAGE_SRCREV ??= "${AUTOREV}"
SRCREV = "${VOLTAGE_SRCREV}"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# Board file installed as /etc/voltage/board.toml (board-configs/<VOLTAGE_BOARD>.toml).
VOLTAGE_BOARD ??= "${MACHINE}"

USERADD_PACKAGES = "${PN}"
# dialout: the RS-485 UARTs (udev rule); redis: Redis's unix socket (redis.conf of this layer).
USERADD_DEPENDS = "redis"
USERADD_PARAM:${PN} = "--system --home-dir /nonexistent --no-create-home --shell /sbin/nologin --groups dialout,redis --user-group voltage"

SYSTEMD_PACKAGES = "${PN} ${PN}-health-gate"
SYSTEMD_SERVICE:${PN} = "voltage.service"
SYSTEMD_SERVICE:${PN}-health-gate = "voltage-health-gate.service"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${UNPACKDIR}/voltage.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${UNPACKDIR}/voltage-health-gate.service ${D}${systemd_system_unitdir}/
    install -d ${D}${libexecdir}/voltage
    install -m 0755 ${UNPACKDIR}/voltage-health-gate ${D}${libexecdir}/voltage/health-gate
    install -m 0755 ${UNPACKDIR}/voltage-rauc-post-install ${D}${libexecdir}/voltage/rauc-post-install
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${UNPACKDIR}/99-voltage-serial.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${UNPACKDIR}/voltage-tmpfiles.conf ${D}${nonarch_libdir}/tmpfiles.d/voltage.conf

    install -d ${D}${sysconfdir}/voltage/comsrv ${D}${sysconfdir}/voltage/hissrv
    install -m 0644 ${UNPACKDIR}/config/voltage.yaml ${D}${sysconfdir}/voltage/
    install -m 0644 ${UNPACKDIR}/config/comsrv/comsrv.yaml ${D}${sysconfdir}/voltage/comsrv/
    install -m 0644 ${UNPACKDIR}/config/hissrv/hissrv.yaml ${D}${sysconfdir}/voltage/hissrv/
    install -m 0644 ${S}/board-configs/${VOLTAGE_BOARD}.toml ${D}${sysconfdir}/voltage/board.toml
    install -d ${D}${sysconfdir}/voltage/modsrv/templates
    install -m 0644 ${S}/config/modsrv/templates/*.yaml ${D}${sysconfdir}/voltage/modsrv/templates/
}

PACKAGES =+ "${PN}-sim ${PN}-health-gate"
FILES:${PN}-sim += "${bindir}/voltage-sim"
FILES:${PN}-health-gate += "${libexecdir}/voltage/health-gate ${libexecdir}/voltage/rauc-post-install \
                            ${systemd_system_unitdir}/voltage-health-gate.service"
FILES:${PN} += "${nonarch_base_libdir}/udev/rules.d ${nonarch_libdir}/tmpfiles.d"
CONFFILES:${PN} = "${sysconfdir}/voltage/voltage.yaml ${sysconfdir}/voltage/comsrv/comsrv.yaml \
                   ${sysconfdir}/voltage/hissrv/hissrv.yaml ${sysconfdir}/voltage/board.toml"

RDEPENDS:${PN} = "redis"
RDEPENDS:${PN}-health-gate = "${PN} rauc"
