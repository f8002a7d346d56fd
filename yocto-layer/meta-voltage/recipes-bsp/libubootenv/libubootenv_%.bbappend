# fw_setenv/fw_printenv (RAUC's bootloader=uboot backend) must reach the same boot state the
# boot script (recipes-bsp/voltage-boot) reads: one fw_env.config per machine, found in
# files/<MACHINE>/ (machines without one keep their BSP's).
FILESEXTRAPATHS:prepend:voltage := "${THISDIR}/files:"
SRC_URI:append:voltage = " ${@'file://fw_env.config' if d.getVar('MACHINE') in ('qemuarm64', 'raspberrypi4-64') else ''}"

do_install:append:voltage() {
    if [ -e ${UNPACKDIR}/fw_env.config ]; then
        install -D -m 0644 ${UNPACKDIR}/fw_env.config ${D}${sysconfdir}/fw_env.config
    fi
}
