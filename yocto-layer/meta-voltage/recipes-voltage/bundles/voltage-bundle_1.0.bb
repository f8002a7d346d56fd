# nooelint: oelint.var.bbclassextend - a bundle is a deploy artefact of the target image
SUMMARY = "VoltageEMS A/B update bundle"
DESCRIPTION = "A signed RAUC bundle with the voltage-image root file system, installed \
               into the inactive slot; the health gate decides whether the new slot stays."
HOMEPAGE = "https://example.invalid/voltage-firmware"
BUGTRACKER = "https://example.invalid/voltage-firmware/issues"
SECTION = "base"
LICENSE = "MIT"
CVE_PRODUCT = ""
# The bundle is made from the image recipe's output only.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "voltage-${MACHINE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "VoltageEMS firmware for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "voltage-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing material never lives in the layer: local.conf (or kas) names it.
RAUC_KEY_FILE = "${VOLTAGE_RAUC_KEY}"
RAUC_CERT_FILE = "${VOLTAGE_RAUC_CERT}"
