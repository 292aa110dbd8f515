#!/usr/bin/env bash
# Install Debian chromium + chromium-driver for the browser test when missing (needs root/apt).
# Without them the browser test is skipped with a clear reason; everything else still runs.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium + chromium-driver (browser test)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped"
else
  echo "note: chromium/chromedriver not found and not root; the browser test will be skipped"
fi
exit 0
