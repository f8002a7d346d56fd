# shellcheck shell=bash
# The pieces of the system-level QEMU target shared by scripts/qemu-boot and scripts/hil-virtual
# (sourced after scripts/cross.d/lib.sh, not run): qemu-system-aarch64, Debian's arm64 kernel and
# busybox, and the initramfs around the static musl `voltage`.
#
#   qemu_ensure_system            sets QEMU_SYSTEM and QEMU_DATA (its -L directory)
#   qemu_ensure_kernel            sets QEMU_KDIR (vmlinuz, busybox, modules/) and QEMU_KVER
#   qemu_initramfs DIR CONFIG OUT [MODULE...]
#                                 builds OUT (gzip cpio) in DIR from qemu/init, busybox, the
#                                 daemon ($QEMU_VOLTAGE) and the config directory CONFIG; the
#                                 virtio modules plus MODULE... with their dependencies

QEMU_CACHE=$CARGO_TARGET_DIR/qemu   # downloads and extracted kernel/qemu, kept between runs

# qemu-system-aarch64: Debian's, when installed. Otherwise Debian's qemu-system-arm package is
# unpacked into the cache instead of installed: on this machine image, installing it would
# remove the newer qemu-utils the image ships (qemu-utils 10 Breaks qemu-system-common < 8).
# Its shared-library dependencies are installed normally.
qemu_ensure_system() {
  mkdir -p "$QEMU_CACHE"
  QEMU_SYSTEM=$(command -v qemu-system-aarch64 || true)
  QEMU_DATA=/usr/share/qemu
  if [ -z "$QEMU_SYSTEM" ]; then
    local qroot=$QEMU_CACHE/qemu-system deps d
    if [ ! -x "$qroot/usr/bin/qemu-system-aarch64" ]; then
      log "unpacking Debian's qemu-system-arm into $qroot"
      [ -n "$_apt_updated" ] || { sudo_ apt-get update -qq; _apt_updated=1; }
      deps=$(apt-cache show qemu-system-arm | awk -F': ' '/^Depends:/{print $2; exit}' \
        | tr ',' '\n' | sed -E 's/\(.*\)//; s/\|.*//; s/ //g' | grep -v '^qemu-' | grep .)
      # shellcheck disable=SC2086
      apt_install $deps
      rm -rf "$QEMU_CACHE/debs-qemu" && mkdir -p "$QEMU_CACHE/debs-qemu"
      (cd "$QEMU_CACHE/debs-qemu" && apt-get -q -o APT::Sandbox::User=root download qemu-system-arm qemu-system-data >/dev/null)
      rm -rf "$qroot.tmp" && mkdir -p "$qroot.tmp"
      for d in "$QEMU_CACHE"/debs-qemu/*.deb; do dpkg -x "$d" "$qroot.tmp"; done
      rm -rf "$qroot" && mv "$qroot.tmp" "$qroot"
    fi
    QEMU_SYSTEM=$qroot/usr/bin/qemu-system-aarch64
    QEMU_DATA=$qroot/usr/share/qemu
  fi
  "$QEMU_SYSTEM" --version | head -1 >&2
}

# Debian arm64 kernel and busybox (private apt state for arm64: no dpkg --add-architecture).
qemu_ensure_kernel() {
  local kdir=$QEMU_CACHE/kernel a kpkg d
  mkdir -p "$QEMU_CACHE"
  if [ ! -s "$kdir/vmlinuz" ] || [ ! -x "$kdir/busybox" ]; then
    a=$QEMU_CACHE/apt-arm64
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
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp/debs" "$kdir.tmp/x"
    (cd "$kdir.tmp/debs" && apt-get -q "${aptopts[@]}" download "$kpkg" busybox-static >/dev/null)
    for d in "$kdir.tmp"/debs/*.deb; do dpkg -x "$d" "$kdir.tmp/x"; done
    cp "$kdir.tmp"/x/boot/vmlinuz-* "$kdir.tmp/vmlinuz"
    cp "$kdir.tmp"/x/boot/config-* "$kdir.tmp/config"
    cp "$kdir.tmp/x/bin/busybox" "$kdir.tmp/busybox"
    mv "$kdir.tmp/x/lib/modules" "$kdir.tmp/modules"
    echo "$kpkg" >"$kdir.tmp/package"
    rm -rf "$kdir.tmp/x" "$kdir.tmp/debs" "$kdir"
    mv "$kdir.tmp" "$kdir"
  fi
  QEMU_KDIR=$kdir
  QEMU_KVER=$(ls "$kdir/modules")
  log "kernel $(cat "$kdir/package") ($QEMU_KVER)"
}

# Modules for virtio-pci, virtio-net and virtio-rng (plus the caller's) with their dependencies
# (read from each module's .modinfo), in load order: the cloud kernel has them as modules, not
# built in. /init loads them from /lib/modules/load-order.
qemu_initramfs() {
  local root=$1 config=$2 out=$3 f n m
  shift 3
  mkdir -p "$root/bin" "$root/usr/bin" "$root/lib/modules" "$root/etc"
  declare -A kofile=() seen=()
  local order=()
  while IFS= read -r f; do
    n=$(basename "$f" .ko); kofile[${n//-/_}]=$f
  done < <(find "$QEMU_KDIR/modules/$QEMU_KVER/kernel" -name '*.ko')
  _qemu_add_module() {
    local n=${1//-/_} d deps
    [ -n "${seen[$n]:-}" ] && return 0
    seen[$n]=1
    [ -n "${kofile[$n]:-}" ] || return 0          # built in
    deps=$(tr '\0' '\n' <"${kofile[$n]}" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do _qemu_add_module "$d"; done
    order+=("$n")
  }
  for m in virtio_pci virtio_net virtio_rng "$@"; do _qemu_add_module "$m"; done
  for n in "${order[@]}"; do cp "${kofile[$n]}" "$root/lib/modules/$n.ko"; done
  printf '%s\n' "${order[@]}" >"$root/lib/modules/load-order"
  cp "$QEMU_KDIR/busybox" "$root/bin/busybox"
  cp "$REPO/qemu/init" "$root/init"
  chmod 755 "$root/init" "$root/bin/busybox"
  cp "$QEMU_VOLTAGE" "$root/usr/bin/voltage"
  cp -r "$config" "$root/etc/voltage"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$out")
  log "initramfs $(stat -c %s "$out") bytes (modules: ${order[*]})"
}
