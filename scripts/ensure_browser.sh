#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own browser download needs the internet,
# which these machines do not have): install it with apt when it is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { as_root apt-get update -q >/dev/null && \
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
chromium --version
