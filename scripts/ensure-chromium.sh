#!/usr/bin/env bash
# The browser tests drive Debian's chromium with Playwright (never Playwright's own browser
# download). Install it once per machine when missing and we may (root with apt), like Redis.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redblue: installing Debian's chromium for the browser tests (once per machine)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >&2
else
  echo "redblue: chromium is not installed: the browser tests will be skipped (apt-get install chromium)" >&2
fi
