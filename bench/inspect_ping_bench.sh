#!/bin/sh
# inspect_ping_bench.sh - reply time of `celeriac inspect ping` with 1 and
# with 10 celeriac workers, on Redis and on SQLite.
#
#   bench/inspect_ping_bench.sh        (REPS=30 PORT=6394 WORKERS="1 10")
#
# Each worker is `-P solo` with its own node name. The ping names every
# worker (-d w1@bench,...), so the call returns as soon as the last one
# answered instead of waiting out its timeout: the time measured is the
# CLI's whole run (process start, connect, broadcast, all replies,
# mailbox cleanup), as a user sees it. Prints one line per setup with the
# median, 90th percentile and maximum in ms. Needs redis-server/redis-cli.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${BUILD:-$here/../build}" && pwd)
reps=${REPS:-30}
port=${PORT:-6394}
counts=${WORKERS:-"1 10"}
cli="$build/celeriac"
tasks="$build/examples/libtasks.so"
tmp=$(mktemp -d)
pids=""
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    kill "$(cat "$tmp/redis.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done

now_ms() { date +%s%N | cut -c1-13; }

# $1: broker URL, $2: worker count, $3: label
run() {
    nodes=""
    pids=""
    i=1
    while [ "$i" -le "$2" ]; do
        "$cli" worker -A "$tasks" -b "$1" -P solo -n "w$i@bench" -l warning \
            >/dev/null 2>"$tmp/worker$i.log" &
        pids="$pids $!"
        nodes="$nodes${nodes:+,}w$i@bench"
        i=$((i + 1))
    done
    # Until every worker answers (each has subscribed to the pidbox).
    until [ "$("$cli" inspect ping -b "$1" -d "$nodes" -t 2 --json 2>/dev/null |
              grep -o pong | wc -l)" -eq "$2" ]; do sleep 0.2; done
    : >"$tmp/times"
    r=0
    while [ "$r" -lt "$reps" ]; do
        t0=$(now_ms)
        got=$("$cli" inspect ping -b "$1" -d "$nodes" -t 10 --json | grep -o pong | wc -l)
        t1=$(now_ms)
        [ "$got" -eq "$2" ] || { echo "only $got of $2 replied" >&2; exit 1; }
        echo $((t1 - t0)) >>"$tmp/times"
        r=$((r + 1))
    done
    sort -n "$tmp/times" | awk -v label="$3" -v n="$2" '
        { v[NR] = $1 }
        END { printf "%s workers=%d reps=%d median_ms=%d p90_ms=%d max_ms=%d\n",
              label, n, NR, v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
    for p in $pids; do kill -TERM "$p"; done
    for p in $pids; do wait "$p" || true; done
    pids=""
}

for n in $counts; do
    redis-cli -p "$port" flushall >/dev/null
    run "redis://127.0.0.1:$port/0" "$n" redis
    rm -f "$tmp"/bench.db*
    run "sqlite:///$tmp/bench.db" "$n" sqlite
done
