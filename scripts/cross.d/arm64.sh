# shellcheck shell=bash
# Emulated arm64 boards, shared by the scripts that boot one (sourced after lib.sh):
#   ensure_qemu_system  sets QEMU_SYSTEM and qemu_args (-L for an unpacked QEMU's firmware)
#   ensure_arm64_kernel CACHE  sets KDIR: vmlinuz (Debian's arm64 cloud kernel, an
#                       uncompressed Image), config, busybox (static), modules/, package

# qemu-system-aarch64: Debian's, when installed. Otherwise Debian's qemu-system-arm package is
# unpacked into the cache instead of installed: on the CI machine image, installing it would
# remove the newer qemu-utils the image ships (qemu-utils 10 Breaks qemu-system-common < 8).
# Its shared-library dependencies are installed normally.
ensure_qemu_system() {
  local cache=$1 qroot deps d
  QEMU_SYSTEM=$(command -v qemu-system-aarch64 || true)
  qemu_args=()
  if [ -z "$QEMU_SYSTEM" ]; then
    qroot=$cache/qemu-system
    if [ ! -x "$qroot/usr/bin/qemu-system-aarch64" ]; then
      log "unpacking Debian's qemu-system-arm into $qroot"
      [ -n "$_apt_updated" ] || { sudo_ apt-get update -qq; _apt_updated=1; }
      deps=$(apt-cache show qemu-system-arm | awk -F': ' '/^Depends:/{print $2; exit}' \
        | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/ //g' | grep -v '^qemu-' | grep .)
      # shellcheck disable=SC2086
      apt_install $deps
      rm -rf "$cache/debs-qemu" && mkdir -p "$cache/debs-qemu"
      (cd "$cache/debs-qemu" && apt-get -q -o APT::Sandbox::User=root download qemu-system-arm qemu-system-data >/dev/null)
      rm -rf "$qroot.tmp" && mkdir -p "$qroot.tmp"
      for d in "$cache"/debs-qemu/*.deb; do dpkg -x "$d" "$qroot.tmp"; done
      rm -rf "$qroot" && mv "$qroot.tmp" "$qroot"
    fi
    QEMU_SYSTEM=$qroot/usr/bin/qemu-system-aarch64
    qemu_args+=(-L "$qroot/usr/share/qemu")
  fi
  "$QEMU_SYSTEM" --version | head -1 >&2
}

# Debian's arm64 kernel and busybox, via a private apt state for arm64 (no dpkg
# --add-architecture, the system's package state is left alone).
ensure_arm64_kernel() {
  local cache=$1 a kpkg d
  KDIR=$cache/kernel
  if [ ! -s "$KDIR/vmlinuz" ] || [ ! -x "$KDIR/busybox" ]; then
    a=$cache/apt-arm64
    mkdir -p "$a/lists/partial" "$a/archives/partial"
    touch "$a/status"
    local aptopts=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Dir::State::Lists="$a/lists"
      -o Dir::State::status="$a/status" -o Dir::Cache="$a" -o Debug::NoLocking=1
      -o APT::Sandbox::User=root)
    log "fetching the arm64 package lists (private apt state in $a)"
    apt-get -qq "${aptopts[@]}" update
    kpkg=$(apt-cache "${aptopts[@]}" depends linux-image-cloud-arm64 | sed -nE 's/^ *Depends: (linux-image-[0-9][^ ]*)$/\1/p' | head -1)
    [ -n "$kpkg" ] || die "no linux-image-cloud-arm64 in the arm64 package lists"
    log "downloading $kpkg and busybox-static (arm64)"
    rm -rf "$KDIR.tmp" && mkdir -p "$KDIR.tmp/debs" "$KDIR.tmp/x"
    (cd "$KDIR.tmp/debs" && apt-get -q "${aptopts[@]}" download "$kpkg" busybox-static >/dev/null)
    for d in "$KDIR.tmp"/debs/*.deb; do dpkg -x "$d" "$KDIR.tmp/x"; done
    cp "$KDIR.tmp"/x/boot/vmlinuz-* "$KDIR.tmp/vmlinuz"
    cp "$KDIR.tmp"/x/boot/config-* "$KDIR.tmp/config"
    cp "$KDIR.tmp/x/bin/busybox" "$KDIR.tmp/busybox"
    mv "$KDIR.tmp/x/lib/modules" "$KDIR.tmp/modules"
    echo "$kpkg" >"$KDIR.tmp/package"
    rm -rf "$KDIR.tmp/x" "$KDIR.tmp/debs" "$KDIR"
    mv "$KDIR.tmp" "$KDIR"
  fi
}
