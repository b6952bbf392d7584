#!/usr/bin/env bash
# Installs the browser the browser tests drive (tests/browser): Debian's `chromium` package, run by
# Playwright with `executable_path` (Playwright's own downloads are not used). Does nothing when
# `chromium` is already on PATH; otherwise needs apt-get and root (directly or through sudo).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "install-chromium: $*" >&2
    echo "install-chromium: install Debian's 'chromium' package yourself (apt-get install chromium)," \
         "or skip the browser tests with PYTEST_ARGS='-m \"not browser\"'" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "chromium is not on PATH and apt-get is not available"

if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then
        as_root=(sudo env)  # a terminal: sudo may ask for the password
    elif sudo -n true 2>/dev/null; then
        as_root=(sudo -n env)
    else
        fail "chromium is not on PATH, and installing it needs root (sudo asks for a password, but there is no terminal)"
    fi
else
    fail "chromium is not on PATH, and installing it needs root (run as root, or install sudo)"
fi

echo "install-chromium: installing Debian's chromium package with apt-get" >&2
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -q \
    || fail "apt-get update failed"
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
    || fail "apt-get install chromium failed"

command -v chromium >/dev/null 2>&1 || fail "apt-get installed chromium but it is not on PATH"
echo "install-chromium: $(chromium --version 2>/dev/null || echo chromium installed)" >&2
