# nooelint: oelint.var.bbclassextend - a boot script for the target machine only
SUMMARY = "U-Boot script choosing the A/B root file system slot for RAUC"
DESCRIPTION = "boot.scr: boots the slot first in BOOT_ORDER that has boot attempts left, \
               counting the attempt before the kernel starts, so a slot that never reaches \
               a healthy daemon falls back to the previous firmware."
HOMEPAGE = "https://example.invalid/voltage-firmware"
BUGTRACKER = "https://example.invalid/voltage-firmware/issues"
SECTION = "bootloaders"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://boot.cmd.in;beginline=1;endline=1;md5=b2dccaa94b3629a08bfb4f983cad6f89"
CVE_PRODUCT = ""

DEPENDS = "u-boot-mkimage-native"
# meta-raspberrypi's U-Boot depends on u-boot-default-script (its boot.scr); the Raspberry Pi
# kas file makes this recipe that provider.
PROVIDES = "u-boot-default-script"

SRC_URI = "file://boot.cmd.in"

inherit deploy nopackages

# Per machine (the test scripts/uboot-ab boots the qemuarm64 values in QEMU with U-Boot):
# the block device and partitions of the wks layout (voltage-ab.wks.in: 1 boot, 2 rootfsA,
# 3 rootfsB, 4 data), the kernel file inside each slot, the U-Boot variable holding the
# device tree address, the kernel console, and where the boot state lives (empty: the U-Boot
# environment via saveenv; a file name: that file on the boot partition).
VOLTAGE_BOOT_DEV ?= "mmc 0"
VOLTAGE_BOOT_DEV:qemuarm64 = "virtio 0"
VOLTAGE_BOOT_PART ?= "1"
VOLTAGE_BOOT_PART_A ?= "2"
VOLTAGE_BOOT_PART_B ?= "3"
VOLTAGE_BOOT_KERNEL ?= "${KERNEL_IMAGETYPE}"
VOLTAGE_BOOT_FDT_VAR ?= "fdt_addr"
VOLTAGE_BOOT_FDT_VAR:qemuarm64 = "fdtcontroladdr"
VOLTAGE_BOOT_CONSOLE ?= "console=ttyS0,115200"
VOLTAGE_BOOT_CONSOLE:qemuarm64 = "console=ttyAMA0,115200"
# The PL011 on GPIO14/15 carries the RS-485 HAT; the console is UART3 (GPIO4/5, dtoverlay=uart3).
VOLTAGE_BOOT_CONSOLE:raspberrypi4-64 = "console=ttyAMA1,115200"
VOLTAGE_BOOT_STATE_FILE ?= ""
VOLTAGE_BOOT_STATE_FILE:qemuarm64 = "voltage-boot.env"
# Attempts a slot gets after RAUC installs into it or marks it good (RAUC's default is 3).
VOLTAGE_BOOT_ATTEMPTS ?= "3"
# Seconds a panicking kernel waits before the board resets (and the next attempt counts).
VOLTAGE_BOOT_PANIC ?= "10"
VOLTAGE_BOOT_EXTRA_ARGS ?= ""
# booti takes an arm64 Image; a 32-bit board (zImage) sets "bootz".
VOLTAGE_BOOT_CMD ?= "booti"

do_compile() {
    case "${VOLTAGE_BOOT_ATTEMPTS}" in
        [1-9]) ;;
        *) bbfatal "VOLTAGE_BOOT_ATTEMPTS must be 1..9 (U-Boot's setexpr counts in hex)" ;;
    esac
    sed -e 's|@@DEV@@|${VOLTAGE_BOOT_DEV}|g' \
        -e 's|@@PART@@|${VOLTAGE_BOOT_PART}|g' \
        -e 's|@@PART_A@@|${VOLTAGE_BOOT_PART_A}|g' \
        -e 's|@@PART_B@@|${VOLTAGE_BOOT_PART_B}|g' \
        -e 's|@@KERNEL@@|${VOLTAGE_BOOT_KERNEL}|g' \
        -e 's|@@FDT_VAR@@|${VOLTAGE_BOOT_FDT_VAR}|g' \
        -e 's|@@CONSOLE@@|${VOLTAGE_BOOT_CONSOLE}|g' \
        -e 's|@@STATE_FILE@@|${VOLTAGE_BOOT_STATE_FILE}|g' \
        -e 's|@@ATTEMPTS@@|${VOLTAGE_BOOT_ATTEMPTS}|g' \
        -e 's|@@PANIC@@|${VOLTAGE_BOOT_PANIC}|g' \
        -e 's|@@EXTRA_ARGS@@|${VOLTAGE_BOOT_EXTRA_ARGS}|g' \
        -e 's|@@CMD@@|${VOLTAGE_BOOT_CMD}|g' \
        ${UNPACKDIR}/boot.cmd.in > ${B}/boot.cmd
    if grep -q '@@[A-Z_]*@@' ${B}/boot.cmd; then
        bbfatal "boot.cmd.in has a placeholder this recipe does not fill"
    fi
    uboot-mkimage -A ${UBOOT_ARCH} -T script -C none -n voltage-boot -d ${B}/boot.cmd ${B}/boot.scr
}

do_deploy() {
    install -d ${DEPLOYDIR}
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
}
addtask deploy after do_compile before do_build

# The i.MX boards' U-Boot device and partition numbers are not set here yet (see README.md).
COMPATIBLE_MACHINE = "^(qemuarm64|raspberrypi4-64)$"
