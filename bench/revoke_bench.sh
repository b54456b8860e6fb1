#!/bin/sh
# revoke_bench.sh - what revokes cost the worker's hot path on Redis:
# drain rate of N bench.noop (results stored, celeriac -c 2) with no
# revoke known, and with R revoked ids present that match no task.
# Alternating pairs, so machine noise hits both sides alike.
#
#   bench/revoke_bench.sh            (N=20000 R=10000 PAIRS=3 PORT=6393)
#
# The SQLite figure is scripts/bench.sh with BENCH_REVOKED=R.
# Needs redis-server and redis-cli. Prints one line per run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${BUILD:-$here/../build}" && pwd)
n=${N:-20000}
r=${R:-10000}
pairs=${PAIRS:-3}
port=${PORT:-6393}
cli="$build/celeriac"
tasks="$build/bench/libbench_tasks.so"
producer="$build/bench/bench_producer"
url="redis://127.0.0.1:$port"
tmp=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
trap 'kill "$(cat "$tmp/redis.pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

run() { # $1: revoked ids to add
    redis-cli -p "$port" flushall >/dev/null
    if [ "$1" -gt 0 ]; then
        seq -f "revoked-%08g" 1 "$1" | xargs -n 1000 "$cli" revoke -b "$url/0" >/dev/null
    fi
    BENCH_REDIS="$url" "$producer" send_task "$n" >/dev/null
    start=$(date +%s.%N)
    "$cli" worker -A "$tasks" -b "$url/0" --result-backend "$url/1" -c 2 -l warning \
        >/dev/null 2>"$tmp/worker.log" &
    pid=$!
    until [ "$(redis-cli -p "$port" -n 1 dbsize)" -ge "$n" ]; do sleep 0.01; done
    end=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || true
    echo "revoked=$1 n=$n drain_per_s=$(echo "$n / ($end - $start)" | bc)" \
        "revoked_in_store=$(redis-cli -p "$port" zcard celeriac.revoked)"
}

i=0
while [ "$i" -lt "$pairs" ]; do
    run 0
    run "$r"
    i=$((i + 1))
done
