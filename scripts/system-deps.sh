#!/usr/bin/env bash
# Installs the system packages the test suite uses when they are missing: redis-server (a
# Valkey-compatible server for the scale-out tests), bubblewrap (agent sandboxing), slirp4netns and
# nftables (agents' network egress and its host firewall), python3-venv (when python3 lacks venv),
# chromium (browser tests, driven by playwright-core). Makes /dev/net/tun usable by agents'
# unprivileged uids (0666, udev's default; minimal VMs and containers without udev leave it 0600).
# Runs before `npm test`; a no-op when everything is in place.
set -euo pipefail
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
missing=()
has redis-server || missing+=(redis-server)
has bwrap || missing+=(bubblewrap)
has slirp4netns || missing+=(slirp4netns)
has nft || missing+=(nftables)
# python3 -m venv: the Python SDK's pip-install test and the Python gRPC client test make venvs.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
browser=()
has chromium || has chromium-browser || browser+=(chromium)
SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]}; install them (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "system-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#browser[@]} -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "system-deps: missing chromium; install it (apt-get install -y --no-install-recommends chromium)" >&2
    exit 1
  fi
  echo "system-deps: installing chromium (headless, for the browser tests)" >&2
  [ ${#missing[@]} -gt 0 ] || $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ]; then
  if [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; then
    echo "system-deps: chmod 0666 /dev/net/tun (slirp4netns runs as each agent's uid)" >&2
    $SUDO chmod 0666 /dev/net/tun
  fi
fi
