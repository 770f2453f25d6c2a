#!/usr/bin/env bash
# Ensure a system Chromium exists at /usr/bin/chromium (used by __test__/browser.spec.mjs
# through playwright-core). Idempotent: does nothing if it is already installed.
# Debian/Ubuntu only (apt-get). Runs apt-get directly when root, via sudo otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

die() {
  echo "ensure-chromium: ERROR: $*" >&2
  exit 1
}

if [ -x "$CHROMIUM" ]; then
  echo "ensure-chromium: $CHROMIUM already present: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install Chromium manually so that $CHROMIUM exists"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not running as root and sudo is not available; re-run as root"
  SUDO=(sudo)
fi

echo "ensure-chromium: $CHROMIUM missing, installing the 'chromium' package with apt-get ..."
"${SUDO[@]}" apt-get update || die "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
  || die "apt-get install chromium failed"

[ -x "$CHROMIUM" ] || die "package installed but $CHROMIUM still does not exist"
echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
