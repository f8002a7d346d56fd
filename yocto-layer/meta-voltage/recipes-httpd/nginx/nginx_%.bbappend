# nginx in front of the daemon's HTTP APIs (which listen on loopback only): one port for the
# site's HMI and northbound tools, replacing nginx's default site.
FILESEXTRAPATHS:prepend:voltage := "${THISDIR}/files:"

SRC_URI:append:voltage = " file://voltage.site"

do_install:append:voltage() {
    install -m 0644 ${UNPACKDIR}/voltage.site ${D}${sysconfdir}/nginx/sites-available/voltage
    rm -f ${D}${sysconfdir}/nginx/sites-enabled/default_server
    ln -sf ../sites-available/voltage ${D}${sysconfdir}/nginx/sites-enabled/voltage
}
