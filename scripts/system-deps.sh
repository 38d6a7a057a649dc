#!/usr/bin/env bash
# Installs the system packages the test suite uses when they are missing: redis-server (a
# Valkey-compatible server for the scale-out tests) and bubblewrap (agent sandboxing).
# Runs before `npm test`; a no-op when both are present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]}; install them (apt-get install -y ${missing[*]})" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
echo "system-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
