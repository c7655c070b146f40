#!/usr/bin/env bash
# The credits page in headless Chromium (scripts/browser-test.py), with what it needs
# installed first: Debian's chromium and chromium-driver (and CJK fonts, so the Chinese
# page renders as a reader sees it), Selenium from PyPI, axe-core from npm (kept under
# target/, never committed).
#
#   scripts/browser-test.sh [target/release/creditd]
#   SCREENSHOTS=docs/screenshots scripts/browser-test.sh   # also refreshes the screenshots
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/creditd}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
fi
python3 -c 'import selenium' 2>/dev/null || pip install --quiet 'selenium>=4.20,<5'
axe=target/browser-test/node_modules/axe-core/axe.min.js
if [ ! -f "$axe" ]; then
  mkdir -p target/browser-test
  (cd target/browser-test && npm install --no-audit --no-fund --silent 'axe-core@^4.10')
fi
args=("$binary" --axe "$axe")
if [ -n "${SCREENSHOTS:-}" ]; then
  mkdir -p "$SCREENSHOTS"
  args+=(--screenshots "$SCREENSHOTS")
fi
python3 scripts/browser-test.py "${args[@]}"
