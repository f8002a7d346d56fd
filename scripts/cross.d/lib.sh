# shellcheck shell=bash
# Shared by scripts/cross-build, scripts/cross-test and scripts/qemu-boot (sourced, not run).
# Installs what the cross toolchain needs, idempotently: Debian's cross gcc and libc, qemu-user
# (+ binfmt_misc so ARM programs spawned by ARM tests run too), and the rustup targets.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The three device targets, by short name.
declare -A TRIPLE=(
  [aarch64]=aarch64-unknown-linux-gnu
  [armv7]=armv7-unknown-linux-gnueabihf
  [aarch64-musl]=aarch64-unknown-linux-musl
)
# Sysroots of Debian's cross libc (qemu-user's -L / QEMU_LD_PREFIX) per target.
declare -A SYSROOT=(
  [aarch64-unknown-linux-gnu]=/usr/aarch64-linux-gnu
  [armv7-unknown-linux-gnueabihf]=/usr/arm-linux-gnueabihf
  [aarch64-unknown-linux-musl]=""
)
declare -A QEMU_USER=(
  [aarch64-unknown-linux-gnu]=qemu-aarch64
  [armv7-unknown-linux-gnueabihf]=qemu-arm
  [aarch64-unknown-linux-musl]=qemu-aarch64
)

# The controllers' cores, emulated by the runners (QEMU_CPU in .cargo/config.toml).
declare -A QEMU_CPU_OF=(
  [aarch64-unknown-linux-gnu]=cortex-a53
  [armv7-unknown-linux-gnueabihf]=cortex-a7
  [aarch64-unknown-linux-musl]=cortex-a53
)

log() { echo "${0##*/}: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Target dir: the caller's CARGO_TARGET_DIR; otherwise cargo's default in CI (shares host
# artifacts with the native build) and, on a shared development machine, a separate directory
# so cross builds never wait on the lock of someone else's native build in target/.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ "${CI:-}" != true ] && [ -d /work ] && [ -w /work ]; then
    export CARGO_TARGET_DIR=/work/target-cross
  else
    export CARGO_TARGET_DIR=$REPO/target
  fi
fi
case $CARGO_TARGET_DIR in /*) ;; *) export CARGO_TARGET_DIR=$REPO/$CARGO_TARGET_DIR ;; esac

_apt_updated=
# apt_install PKG...: installs the Debian packages not installed yet (never removes any).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "$_apt_updated" ]; then sudo_ apt-get update -qq; _apt_updated=1; fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-remove "${missing[@]}" >/dev/null
}

# Registers qemu-user for aarch64/arm ELF in binfmt_misc (from qemu-user-static's
# /usr/lib/binfmt.d), so an ARM test binary can exec the ARM `voltage` it spawns. The F flag
# keeps it working in any mount namespace. Leaves an existing registration alone.
ensure_binfmt() {
  local a
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    sudo_ mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  fi
  for a in aarch64 arm; do
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$a" ] && continue
    if [ -w /proc/sys/fs/binfmt_misc/register ] || [ "$(id -u)" != 0 ]; then
      sudo_ sh -c "cat /usr/lib/binfmt.d/qemu-$a.conf > /proc/sys/fs/binfmt_misc/register" 2>/dev/null || true
    fi
    [ -e "/proc/sys/fs/binfmt_misc/qemu-$a" ] \
      || log "warning: could not register qemu-$a in binfmt_misc: tests that spawn the ARM voltage binary will fail"
  done
}

# ensure_toolchain TRIPLE...: cross gcc + libc, qemu-user, binfmt, rustup targets.
ensure_toolchain() {
  local pkgs=(qemu-user qemu-user-static file) t
  for t in "$@"; do
    case $t in
      aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl) pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
      armv7-unknown-linux-gnueabihf) pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross) ;;
      *) die "unknown target $t" ;;
    esac
  done
  apt_install "${pkgs[@]}"
  ensure_binfmt
  local have
  have=$(rustup target list --installed 2>/dev/null || true)
  for t in "$@"; do
    grep -qx "$t" <<<"$have" || { log "rustup target add $t"; rustup target add "$t" >/dev/null; }
  done
}

# The suite's native peers (redis-server, socat, mbpoll, influxd, mosquitto, pymodbus ...), as
# scripts/test installs them: its `command -v X ... || missing+=(pkg)` lines and its pinned
# PYMODBUS_VERSION are read from it, so the list has one source.
ensure_peers() {
  local missing=() pymodbus grpc
  eval "$(grep -E '^command -v .*missing\+=\(' "$REPO/scripts/test")"
  [ ${#missing[@]} -gt 0 ] && apt_install "${missing[@]}"
  pymodbus=$(sed -nE 's/^PYMODBUS_VERSION=([^ #]+).*/\1/p' "$REPO/scripts/test")
  if [ -n "$pymodbus" ] && ! python3 -c "import serial, pymodbus, sys; sys.exit(pymodbus.__version__ != '$pymodbus')" 2>/dev/null; then
    log "installing pymodbus==$pymodbus with pyserial"
    python3 -m pip install -q "pymodbus==$pymodbus" pyserial 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "pymodbus==$pymodbus" pyserial
  fi
  grpc=$(sed -nE 's/^GRPCIO_TOOLS_VERSION=([^ #]+).*/\1/p' "$REPO/scripts/test")
  if [ -n "$grpc" ] && ! python3 -c "import grpc, grpc_tools, importlib.metadata as m, sys; sys.exit(m.version('grpcio-tools') != '$grpc')" 2>/dev/null; then
    log "installing grpcio-tools==$grpc with grpcio (Python protocol plugins)"
    python3 -m pip install -q "grpcio-tools==$grpc" grpcio 2>/dev/null \
      || python3 -m pip install -q --break-system-packages "grpcio-tools==$grpc" grpcio
  fi
}

# free_ports N: N distinct ports for servers this script starts, printed on one line (the shared
# rule in scripts/lib/freeports.py: below the ephemeral range, each checked free).
free_ports() { python3 "$REPO/scripts/lib/freeports.py" "${1:-1}"; }
free_port() { free_ports 1; }

# wait_for SECONDS COMMAND...: retries COMMAND every 0.1 s until it succeeds or time runs out.
wait_for() {
  local n=$(($1 * 10)); shift
  while ! "$@" >/dev/null 2>&1; do
    n=$((n - 1)); [ $n -gt 0 ] || return 1
    sleep 0.1
  done
}

# Human size: 4667256 -> 4.45 MiB
mib() { awk -v b="$1" 'BEGIN{printf "%.2f MiB", b/1048576}'; }
