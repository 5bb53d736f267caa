#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests of the Active Plans page.
#
# The tests drive /usr/bin/chromium through Playwright (never `playwright install`:
# the browser comes from the distribution's packages). When it is missing and we are
# root (CI runs as root on a clean machine) it is installed with apt-get; otherwise
# a note is printed and the browser tests skip themselves.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM is missing and this is not a root Debian shell;" \
        "the browser tests will be skipped (install the \`chromium\` package)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "ensure_chromium: installing Debian's chromium package" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$CHROMIUM" --version >&2
