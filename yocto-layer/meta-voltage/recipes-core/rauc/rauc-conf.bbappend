# The controller's A/B layout (system.conf) and the keyring that verifies update bundles.
# Bundles are signed with VOLTAGE_RAUC_KEY/VOLTAGE_RAUC_CERT (voltage-bundle); the keyring
# installed here must be the CA of that certificate: set RAUC_KEYRING_FILE to it in local.conf.
FILESEXTRAPATHS:prepend:voltage := "${THISDIR}/files:"

do_install:append:voltage() {
    sed -i -e 's/@MACHINE@/${MACHINE}/' ${D}${sysconfdir}/rauc/system.conf
}
