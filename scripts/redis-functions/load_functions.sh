#!/usr/bin/env bash
# Loads every Redis Functions library in this directory into Redis (FUNCTION LOAD REPLACE).
# Target: REDIS_URL (redis://host:port[/db]) or REDIS_HOST/REDIS_PORT (default 127.0.0.1:6379),
# or REDIS_SOCKET (a unix socket path). Fails loudly: any library that does not load exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v redis-cli >/dev/null || { echo "load_functions.sh: redis-cli not found (apt-get install redis-tools)" >&2; exit 1; }

args=()
if [ -n "${REDIS_SOCKET:-}" ]; then
  args=(-s "$REDIS_SOCKET")
elif [ -n "${REDIS_URL:-}" ]; then
  args=(-u "$REDIS_URL")
else
  args=(-h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}")
fi

# core.lua (voltage_functions_version, the marker the daemon checks) goes last, and only when
# every other library loaded: a half-loaded set must not look current to the daemon.
load() {
  local lib=$1 name out
  name=$(head -1 "$lib" | sed -n 's/^#!lua name=\([A-Za-z0-9_]*\).*/\1/p')
  if [ -z "$name" ]; then
    echo "load_functions.sh: $lib: first line must be '#!lua name=<library>'" >&2
    return 1
  fi
  out=$(redis-cli "${args[@]}" -x FUNCTION LOAD REPLACE < "$lib" 2>&1) || true
  if [ "$out" != "$name" ]; then
    echo "load_functions.sh: $lib: $out" >&2
    return 1
  fi
  echo "loaded $name"
}

status=0
for lib in "$here"/*.lua; do
  [ "$(basename "$lib")" = core.lua ] && continue
  load "$lib" || status=1
done
if [ -f "$here/core.lua" ]; then
  if [ $status -eq 0 ]; then
    load "$here/core.lua" || status=1
  else
    echo "load_functions.sh: $here/core.lua: not loaded because a library above failed" >&2
  fi
fi
exit $status
