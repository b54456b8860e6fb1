#!/bin/sh
# events_bench.sh - what monitoring events cost the drain: celeriac and
# Python Celery 5.2 each with task events off and on (-E), on the shared
# Celery-on-Redis harness (../shared/bench-celery), same Redis, same
# Python producer, one run.
#
#   bench/events_bench.sh
#
# Environment: BUILD (default <root>/build), PORT (default 6391), REPS
# (default 3), N (tasks per drain, default 20000),
# WORKERS (default "celeriac celery": which side(s) to run),
# SUBSCRIBE=1 (a redis-cli PSUBSCRIBE /0.celeryev/* runs beside each
# worker, in its process group, as a monitor would: its CPU counts in
# the worker's).
# Results land in bench/results/ (run-*.json and .md from run_bench.py).
# The harness FLUSHALLs the Redis on PORT: it starts a throw-away one.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared="$root/../shared/bench-celery"
build=$(cd "${BUILD:-$root/build}" && pwd)
port=${PORT:-6391}
workers=${WORKERS:-celeriac celery}
py=/usr/bin/python3
outdir="$here/results"

cli="$build/celeriac"
tasks="$build/bench/libbench_tasks.so"
for f in "$cli" "$tasks" "$shared/run_bench.py"; do
    [ -e "$f" ] || { echo "events_bench.sh: missing $f (build first)" >&2; exit 2; }
done
mkdir -p "$outdir"

redis="redis://127.0.0.1:$port"
prefix=
tag=events
if [ "${SUBSCRIBE:-0}" = 1 ]; then
    prefix="sh -c 'redis-cli -p $port psubscribe \"/0.celeryev/*\" >/dev/null & exec \"\$0\" \"\$@\"' "
    tag=events-subscribed
fi
celeriac_worker="$cli worker -A $tasks -b $redis/0 --result-backend $redis/1 -c 2 -l warning"
celery_flags="-l WARNING --without-gossip --without-mingle --without-heartbeat"
prefork2="$py -m celery -A benchapp worker -P prefork -c 2 $celery_flags -n prefork2@%h"

set --
for side in $workers; do
    case $side in
    celeriac)
        set -- "$@" --worker "celeriac-2=$prefix$celeriac_worker" \
            --worker "celeriac-2-E=$prefix$celeriac_worker -E" ;;
    celery)
        set -- "$@" --worker "prefork2=$prefix$prefork2" --worker "prefork2-E=$prefix$prefork2 -E" ;;
    esac
done
"$py" "$shared/run_bench.py" --start-redis --port "$port" --only drain --drain-modes results \
    --reps "${REPS:-3}" --n "${N:-20000}" --outdir "$outdir" --tag "$tag" "$@"
