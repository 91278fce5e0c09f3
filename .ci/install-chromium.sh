#!/usr/bin/env bash
# Install Debian's chromium and its matching chromedriver for the report's browser test
# (tests/workflow/test_browser.py renders the smoke-scale report headless and checks the rendered page).
# Idempotent: does nothing if both are installed. Needs root (or passwordless sudo) and Debian/Ubuntu apt.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-chromium: chromium and chromedriver already installed, nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium: need root (or sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "install-chromium: installed $(chromium --version 2>/dev/null) in $(($(date +%s) - start)) s"
