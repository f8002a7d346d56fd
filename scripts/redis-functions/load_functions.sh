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

status=0
for lib in "$here"/*.lua; do
  name=$(head -1 "$lib" | sed -n 's/^#!lua name=\([A-Za-z0-9_]*\).*/\1/p')
  if [ -z "$name" ]; then
    echo "load_functions.sh: $lib: first line must be '#!lua name=<library>'" >&2
    status=1; continue
  fi
  out=$(redis-cli "${args[@]}" -x FUNCTION LOAD REPLACE < "$lib" 2>&1) || true
  if [ "$out" != "$name" ]; then
    echo "load_functions.sh: $lib: $out" >&2
    status=1
  else
    echo "loaded $name"
  fi
done
exit $status
