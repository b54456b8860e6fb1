#!/bin/sh
# Installs the Debian packages celeriac needs to build and test (tzdata:
# the zoneinfo files periodic entries read their time zones from;
# libmicrohttpd and libcrypt: the dashboard's HTTP server and its password hashes). Safe to
# run again: apt-get skips what is already there.
set -eu

PACKAGES="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev \
libjansson-dev libsqlite3-dev sqlite3 libhiredis-dev libuv1-dev redis-server python3-celery python3-redis \
tzdata libmicrohttpd-dev libcrypt-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
