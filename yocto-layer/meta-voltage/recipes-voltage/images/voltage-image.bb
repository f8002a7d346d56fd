SUMMARY = "VoltageEMS field controller image"
DESCRIPTION = "A read-only root file system with the voltage daemon, Redis and nginx, \
               updated A/B with RAUC; data and site configuration on a separate /data partition."
HOMEPAGE = "https://example.invalid/voltage-firmware"
BUGTRACKER = "https://example.invalid/voltage-firmware/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = ""

inherit core-image

IMAGE_INSTALL = "packagegroup-core-boot packagegroup-voltage ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_FEATURES += "read-only-rootfs"
# An updated slot is marked good by voltage-health-gate only, never unconditionally at boot.
BAD_RECOMMENDATIONS += "rauc-mark-good"

# Partitions: boot, rootfs A, rootfs B (empty until the first update), /data.
WKS_FILE ?= "voltage-ab.wks.in"
# U-Boot's A/B slot choice (recipes-bsp/voltage-boot) on the boot partition. On the Raspberry
# Pi it is meta-raspberrypi's u-boot-default-script (kas file), which that layer deploys itself.
WKS_FILE_DEPENDS:append:qemuarm64 = " voltage-boot-script"
IMAGE_BOOT_FILES:append:qemuarm64 = " boot.scr"
IMAGE_FSTYPES += "ext4 wic"
