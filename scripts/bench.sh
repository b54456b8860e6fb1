#!/bin/sh
# Runs the embedded-default benchmark (bench/bench_sqlite.c) and prints its
# JSON line. Record the numbers in bench/RESULTS.md with the date and machine.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
N=${BENCH_N:-20000}
TRIPS=${BENCH_TRIPS:-1000}
CONC=${BENCH_CONCURRENCY:-2}
"$BUILD/bench/bench_sqlite" "$BUILD/celeriac" "$BUILD/examples/libtasks.so" "$N" "$TRIPS" "$CONC"
