#!/usr/bin/env bash
# Install the Debian packages that `leadstream services` runs: redis-server,
# prometheus (with promtool), prometheus-alertmanager (with amtool), chromium (dashboard
# tests) and Pango with DejaVu fonts (PDF reports); also
# python3.11-venv when python3.11 cannot create a virtualenv yet.
#
# Idempotent and quick when everything is present (no apt-get at all).
# As root it installs what is missing (one `apt-get update`, then
# `apt-get install --no-install-recommends`, non-interactive). As another user
# it prints the exact sudo command and exits 1.
set -euo pipefail

missing=()

# A command may come from elsewhere than Debian (a tarball, Homebrew): accept it.
need() {  # need PACKAGE COMMAND [COMMAND...]
    local pkg=$1
    shift
    for cmd in "$@"; do
        if command -v "$cmd" >/dev/null 2>&1; then
            return 0
        fi
    done
    missing+=("$pkg")
}

need redis-server redis-server
need prometheus prometheus
need prometheus-alertmanager prometheus-alertmanager alertmanager
# The dashboard tests drive the system Chromium through Playwright (no browser download).
need chromium chromium chromium-browser
# WeasyPrint (PDF reports) needs Pango; reports embed DejaVu fonts.
need_lib() {  # need_lib PACKAGE  (a shared library: ask dpkg, or accept when dpkg is absent)
    if command -v dpkg-query >/dev/null 2>&1 &&
        ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$1")
    fi
}
# `leadstream backfill` reads PostgreSQL through psql; its test runs a server of its own.
need postgresql psql
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
    missing+=(postgresql)
fi
need_lib libpango-1.0-0
need_lib libpangoft2-1.0-0
need_lib fonts-dejavu-core
# Debian's own python3.11 (prefix /usr) needs python3.11-venv for `python3.11 -m venv`.
if [ "$(python3.11 -c 'import sys; print(sys.base_prefix)' 2>/dev/null || true)" = /usr ] &&
    ! python3.11 -c 'import ensurepip' >/dev/null 2>&1; then
    missing+=(python3.11-venv)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: redis-server, prometheus, prometheus-alertmanager, chromium, pango are installed"
    exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} and apt-get is not available;" \
        "install them with your system's package manager" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive $install_cmd" >&2
    exit 1
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "system-deps: done"
