#!/bin/sh
# short_delay.sh - how late a short countdown runs on a Redis worker.
#
#   bench/short_delay.sh [N] [COUNTDOWN]     (defaults: 8 samples, 0.5 s)
#
# Starts redis-server and a celeriac worker (-c 2, the example tasks),
# then N times: `celeriac call tasks.add 2 3 --countdown COUNTDOWN`, wait
# for the result and print how late it ran: the result's date_done minus
# (the wall time just before the call + COUNTDOWN). That includes the
# client's start-up and the result store (a few ms). Samples are spaced
# by an odd 0.37 s so they fall at different points of the worker's
# once-a-second delayed check. Needs redis-server and python3.
# Environment: BUILD (default <root>/build), PORT (default 6393).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${BUILD:-$root/build}" && pwd)
n=${1:-8}
countdown=${2:-0.5}
port=${PORT:-6393}
url="redis://127.0.0.1:$port/0"
tmp=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
worker_pid=
trap 'kill $worker_pid "$(cat "$tmp/redis.pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
"$build/celeriac" worker -A "$build/examples/libtasks.so" -b "$url" -c 2 -l warning \
    >"$tmp/worker.log" 2>&1 &
worker_pid=$!
sleep 2

i=0
while [ "$i" -lt "$n" ]; do
    t0=$(date +%s.%N)
    id=$("$build/celeriac" call tasks.add 2 3 --countdown "$countdown" -b "$url")
    "$build/celeriac" result "$id" --wait --json -b "$url" >"$tmp/r.json"
    python3 - "$t0" "$countdown" "$tmp/r.json" <<'PY'
import datetime, json, sys
t0, cd, path = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
done = json.load(open(path))["date_done"]
d = datetime.datetime.fromisoformat(done.replace("Z", "+00:00"))
if d.tzinfo is None:
    d = d.replace(tzinfo=datetime.timezone.utc)
print("late %.0f ms" % ((d.timestamp() - t0 - cd) * 1000))
PY
    sleep 0.37
    i=$((i + 1))
done
