#!/bin/sh
# Make sure Debian's Chromium is available for the Playwright browser tests.
#
# Playwright cannot download its own browsers here, so tests drive the
# distribution package at /usr/bin/chromium (override with CHROMIUM_PATH).
# When running as root and the binary is missing, install it with apt-get;
# otherwise do nothing. Always says what it did. Exit status is non-zero only
# when an installation was attempted and failed.
set -eu

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "ensure-chromium: $CHROMIUM already installed ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')); nothing to do"
    exit 0
fi

if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: $CHROMIUM is missing and we are not root; not installing." >&2
    echo "ensure-chromium: install it with 'sudo apt-get install chromium' (browser tests will be skipped)." >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; not installing." >&2
    exit 0
fi

echo "ensure-chromium: $CHROMIUM is missing; running apt-get update && apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium
if [ -x "$CHROMIUM" ]; then
    echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
    echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
