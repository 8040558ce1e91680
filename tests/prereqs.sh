#!/bin/sh
# What `make test` needs beyond Python packages, checked before anything else runs (make test's first
# step). Run as root on a machine with apt-get (a fresh Debian/Ubuntu CI box), it installs the missing
# Debian packages itself; anywhere else it names exactly what is missing and how to get it, and stops —
# one clear message instead of dozens of failing tests.
#
#   sh tests/prereqs.sh            (PY=python3 by default: the interpreter make builds .venv with)
set -eu

PY=${PY:-python3}
# The deployment tests build the image's virtualenv from a Python every user can run (tests/e2e/deployed.py).
SYSTEM_PATH=/usr/local/bin:/usr/bin:/bin

# Debian puts nginx in /usr/sbin, which is not on an ordinary user's PATH; the tests look there too.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

add() {
    packages="$packages $1"
    notes="$notes
  - $2 (Debian: $1)"
}

note() {
    notes="$notes
  - $1"
}

# A Python that can build a virtualenv and compile pdqhash (it has no wheel) against its headers.
python_usable() {  # interpreter, Debian package prefix, what it is for
    if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        return 1
    fi
    "$1" -c 'import ensurepip, venv' 2>/dev/null || add "$2-venv" "$1 -m venv: $3"
    "$1" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || add "$2-dev" "the C headers of $1: pdqhash is compiled for $3"
}

# Fills $packages (Debian package names) and $notes (one line each).
check() {
    packages=""
    notes=""
    if ! have "$PY"; then
        add "python3 python3-venv python3-dev" "$PY, Python 3.11 or newer: make builds .venv with it"
    elif ! python_usable "$PY" python3 ".venv"; then
        note "Python 3.11 or newer: $PY is $("$PY" -c 'import sys; print(sys.version.split()[0])') (run make test PY=/path/to/python3.11)"
    fi
    system_python=$(PATH=$SYSTEM_PATH command -v python3.11 || true)
    if [ -z "$system_python" ]; then
        add "python3.11 python3.11-venv python3.11-dev" "python3.11 in $SYSTEM_PATH: the deployment tests build the image's virtualenv with it"
    else
        python_usable "$system_python" python3.11 "the deployment tests' image virtualenv"
    fi
    have c++ || add build-essential "a C++ compiler: pdqhash has no wheel and is compiled"
    [ -e /etc/ssl/certs/ca-certificates.crt ] || add ca-certificates "CA certificates: pip and npm download over HTTPS"
    have nginx || add nginx-light "nginx: the end-to-end tests run the shipped nginx sites"
    have caddy || add caddy "caddy: the end-to-end tests run the shipped Caddyfiles"
    have chromium || add chromium "chromium: the browser tests (review page, cross-origin uploads)"
    { have prometheus && have promtool; } || add prometheus "prometheus and promtool: the alert rules' and the dashboard's tests"
    # Debian 12 ships Node 18; the pinned PDS is installed with npm and run on Node 20 or newer.
    if ! have node || ! have npm; then
        note "Node.js 20 or newer with npm: the end-to-end tests run a real PDS from npm (Debian 12 ships 18:
    install NodeSource's nodejs package or a nodejs.org build)"
    elif ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
        note "Node.js 20 or newer: node is $(node --version) (the end-to-end tests run a real PDS from npm)"
    fi
}

check
installed=""
if [ -n "$packages" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "make test: installing$packages (apt-get, as root)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # one word per package
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null
    installed=$packages
    check
fi
if [ -n "$notes" ]; then
    echo "make test needs what this machine lacks:$notes" >&2
    if [ -n "$packages" ] && [ -n "$installed" ]; then
        echo "apt-get installed$installed, yet the above are still not found: is PATH complete?" >&2
    elif [ -n "$packages" ]; then
        echo "Install the Debian packages with: apt-get install$packages" >&2
        echo "(as root where apt-get is available, make test installs them itself)" >&2
    fi
    exit 1
fi
