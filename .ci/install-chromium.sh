#!/usr/bin/env bash
# Install Debian's chromium and its matching chromedriver for the report's browser test
# (tests/workflow/test_browser.py renders the smoke-scale report headless and checks the rendered page).
# Idempotent: does nothing if both are installed. Needs root (or passwordless sudo) and Debian/Ubuntu apt.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-chromium: chromium and chromedriver already installed, nothing to do"
    exit 0
fi

source "$(dirname "$0")/apt-install.sh"
start=$(date +%s)
apt_install install-chromium chromium chromium-driver fonts-dejavu-core
echo "install-chromium: installed $(chromium --version 2>/dev/null) in $(($(date +%s) - start)) s"
