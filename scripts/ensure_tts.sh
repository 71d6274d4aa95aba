#!/usr/bin/env bash
# The wake-word studio speaks its training data with Debian's offline voices (espeak-ng and
# flite, run as programs): install them with apt when they are missing.
set -euo pipefail
if command -v espeak-ng >/dev/null 2>&1 && command -v flite >/dev/null 2>&1; then
    exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng flite >/dev/null \
    || { as_root apt-get update -q >/dev/null && \
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng flite >/dev/null; }
espeak-ng --version
