#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver for the dashboard's browser tests, only
# when /usr/bin/chromium is missing (so a warm machine pays nothing). Selenium itself
# comes from the test extras; it is pointed at these binaries, so Selenium Manager never
# downloads a browser.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
