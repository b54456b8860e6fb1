#!/bin/sh
# delayed_rss.sh - a celeriac worker's memory while 100,000 countdown
# tasks (due in an hour) are scheduled on its queue, on Redis and SQLite
# (issue 7): the worker must park them broker-side, not hold them.
#
#   bench/delayed_rss.sh [N]      (default N=100000)
#
# For each transport: start a worker (-c 2), let it settle, read its
# VmRSS, publish N tasks with countdown 3600 through the C client
# (build/bench/bench_producer with BENCH_COUNTDOWN), wait until the worker
# has seen them all (Redis: all N in celeriac.delayed, where it parks
# them; SQLite: they stay rows, due later, and the worker sees none), read
# VmRSS again. Prints one line per transport. Needs redis-server.
# Environment: BUILD (default <root>/build), PORT (default 6392).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${BUILD:-$root/build}" && pwd)
n=${1:-100000}
port=${PORT:-6392}
tmp=$(mktemp -d)
redis_pid=
worker_pid=
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

run() { # transport url
    "$build/celeriac" worker -A "$build/bench/libbench_tasks.so" -b "$2" -c 2 -l warning \
        >"$tmp/$1.log" 2>&1 &
    worker_pid=$!
    sleep 2
    before=$(rss_kib "$worker_pid")
    start=$(date +%s.%N)
    BENCH_BROKER_URL=$2 BENCH_COUNTDOWN=3600 "$build/bench/bench_producer" send_task_ir "$n" \
        >"$tmp/$1.producer.json"
    if [ "$1" = redis ]; then
        while [ "$(redis-cli -p "$port" zcard celeriac.delayed)" -lt "$n" ]; do sleep 0.5; done
    fi
    parked=$(date +%s.%N)
    sleep 3 # idle turns after the last one
    after=$(rss_kib "$worker_pid")
    printf '%s: %d countdown tasks, sent+parked in %.1f s; worker RSS %d KiB -> %d KiB (%+d KiB)\n' \
        "$1" "$n" "$(echo "$parked - $start" | bc)" "$before" "$after" $((after - before))
    kill -TERM "$worker_pid"
    wait "$worker_pid" 2>/dev/null || true
    worker_pid=
}

redis-server --port "$port" --save '' --appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
run redis "redis://127.0.0.1:$port/0"
run sqlite "sqlite:///$tmp/celeriac.db"
