#!/bin/sh
# redis_bench.sh - celeriac next to Python Celery 5.2 on the shared
# Celery-on-Redis harness (../shared/bench-celery, a sibling of the
# project root), same Redis, same Python producer, one run.
#
#   bench/redis_bench.sh [extra run_bench.py options, e.g. --n 5000]
#
# 1. enqueue, drain, latency with two workers: celeriac -c 2 (our task
#    module build/bench/libbench_tasks.so) and Celery prefork -c 2.
# 2. enqueue again with the C producer (build/bench/bench_producer,
#    client API in batches of 1000) instead of producer.py.
# 3. round trip with a C client against the celeriac worker
#    (bench_producer latency), which latency.py (Python) cannot show.
#
# Needs redis-server, python3-celery and python3-redis for /usr/bin/python3.
# Results land in bench/results/ (run-*.json and .md from run_bench.py,
# c-latency-*.json from step 3). The harness FLUSHALLs the Redis on PORT:
# it starts a throw-away one there (--start-redis).
#
# Environment: BUILD (default <root>/build), PORT (default 6391), LAT_N
# (C round trips, default 1000).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared="$root/../shared/bench-celery"
build=$(cd "${BUILD:-$root/build}" && pwd)
port=${PORT:-6391}
lat_n=${LAT_N:-1000}
py=/usr/bin/python3
outdir="$here/results"

cli="$build/celeriac"
tasks="$build/bench/libbench_tasks.so"
producer="$build/bench/bench_producer"
for f in "$cli" "$tasks" "$producer" "$shared/run_bench.py"; do
    [ -e "$f" ] || { echo "redis_bench.sh: missing $f (build first)" >&2; exit 2; }
done
mkdir -p "$outdir"

redis="redis://127.0.0.1:$port"
celeriac_worker="$cli worker -A $tasks -b $redis/0 --result-backend $redis/1 -c 2 -l warning"
celery_flags="-l WARNING --without-gossip --without-mingle --without-heartbeat"
prefork2="$py -m celery -A benchapp worker -P prefork -c 2 $celery_flags -n prefork2@%h"

echo "== 1/3 enqueue (Python producer), drain, latency: celeriac-2 vs prefork2" >&2
"$py" "$shared/run_bench.py" --start-redis --port "$port" --reps 1 \
    --only enqueue,drain,latency --outdir "$outdir" --tag side-by-side \
    --worker "celeriac-2=$celeriac_worker" --worker "prefork2=$prefork2" "$@"

echo "== 2/3 enqueue with the C producer" >&2
"$py" "$shared/run_bench.py" --start-redis --port "$port" --reps 1 \
    --only enqueue --outdir "$outdir" --tag c-producer \
    --producer-cmd "$producer {mode} {n}" "$@"

echo "== 3/3 round trip, C client -> celeriac worker ($lat_n)" >&2
tmp=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
worker_pid=
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis did not start" >&2; exit 1; }; sleep 0.05
done
export BENCH_REDIS="$redis" BENCH_BROKER_DB=0 BENCH_RESULT_DB=1
# shellcheck disable=SC2086 # the worker command is split on purpose
$celeriac_worker >"$tmp/worker.log" 2>&1 &
worker_pid=$!
"$producer" latency 50 >/dev/null # warm-up: worker ready, connections open
stamp=$(date +%Y%m%d-%H%M%S)
"$producer" latency "$lat_n" | tee "$outdir/c-latency-$stamp.json"
