#!/bin/sh
# test_cli_exports.sh - the `celeriac` executable exports the library's
# public API, all of it and nothing else.
#
#   sh tests/scripts/test_cli_exports.sh CLI LIBCELERIAC_SO
#
# Task modules loaded with `celeriac worker -A` are dlopen'ed and bind
# their cel_* calls to the executable, so every public symbol of the
# shared library must be exported by it too, including those the CLI
# never calls itself. Its own symbols (cli_parse, ...) must not be: a
# module's function of the same name would bind to ours.

set -eu

cli=$1
lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Defined dynamic symbols, one name a line. Names with '@' are copies of
# libc data (stdout@GLIBC_2.2.5), not ours.
exports() {
    nm -D --defined-only "$1" | awk '$3 !~ /@/ { print $3 }' | LC_ALL=C sort -u
}

exports "$lib" | grep '^cel_' >"$tmp/lib"
exports "$cli" >"$tmp/all"
grep '^cel_' "$tmp/all" >"$tmp/cli" || true

n=$(wc -l <"$tmp/lib")
if [ "$n" -lt 50 ]; then
    echo "FAIL: $lib exports only $n cel_* symbols; is it the library?"
    exit 1
fi
bad=0
missing=$(LC_ALL=C comm -23 "$tmp/lib" "$tmp/cli")
if [ -n "$missing" ]; then
    echo "FAIL: public symbols the CLI does not export (a task module calling them fails to load):"
    echo "$missing"
    bad=1
fi
extra=$(LC_ALL=C comm -13 "$tmp/lib" "$tmp/cli")
if [ -n "$extra" ]; then
    echo "FAIL: cel_* symbols the CLI exports but the library does not:"
    echo "$extra"
    bad=1
fi
# What the linker defines in every executable (_start, _edata, ...) begins
# with '_'; data_start is glibc's alias of __data_start.
own=$(grep -v -e '^cel_' -e '^_' -e '^data_start$' "$tmp/all" || true)
if [ -n "$own" ]; then
    echo "FAIL: the CLI exports symbols of its own (hide them):"
    echo "$own"
    bad=1
fi
[ "$bad" -eq 0 ] || exit 1
echo "ok: the CLI exports the $n public symbols of the library and nothing of its own"
