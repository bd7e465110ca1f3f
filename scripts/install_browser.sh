#!/usr/bin/env bash
# Install the browser the Space's browser test drives: Debian's Chromium (DESIGN.md: Playwright's own browser
# download needs the internet; the distribution package comes from the package mirror).
#
# Idempotent and fast when Chromium is already there. Run as root (or with sudo available) on Debian/Ubuntu.
# Usage: scripts/install_browser.sh            (then: pytest -m browser tests/test_space.py)
set -euo pipefail

CHROMIUM="${MICROX_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  echo "chromium already installed: $CHROMIUM"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install Chromium with your package manager and set MICROX_CHROMIUM to its path" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "error: installing Chromium needs root; rerun as root or install the 'chromium' package yourself" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-dejavu-core: legible text in the test's screenshot on a bare image.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

if [ ! -x "$CHROMIUM" ]; then
  echo "error: the chromium package installed but $CHROMIUM is missing (Ubuntu ships it as a snap:" \
       "set MICROX_CHROMIUM to the browser binary)" >&2
  exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
