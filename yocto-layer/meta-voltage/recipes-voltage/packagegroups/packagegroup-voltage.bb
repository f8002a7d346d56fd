SUMMARY = "VoltageEMS controller software"
DESCRIPTION = "The voltage daemon with its Redis and nginx, the A/B update client (RAUC) \
               and the health gate that marks an updated slot good."
HOMEPAGE = "https://example.invalid/voltage-firmware"
BUGTRACKER = "https://example.invalid/voltage-firmware/issues"
SECTION = "base"
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "\
    can-utils \
    libgpiod-tools \
    nginx \
    rauc \
    rauc-conf \
    redis \
    voltage \
    voltage-health-gate \
"
