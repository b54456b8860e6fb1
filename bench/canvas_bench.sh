#!/bin/sh
# canvas_bench.sh - workflows on Redis (issue 8): celeriac workers -c 2
# vs Python Celery 5.2 prefork -c 2, one run, one throw-away Redis, the
# same Python client (bench/canvas_bench.py):
#
#   - a chord of 10,000 tasks.add header tasks, body tasks.xsum: time
#     from apply_async to the body's result
#   - a chain of 1,000 links end to end
#   - 1,000 tasks with a link (callback) vs 1,000 without
#
#   bench/canvas_bench.sh [canvas_bench.py options, e.g. --chord-n 2000]
#
# Needs redis-server, python3-celery and python3-redis for /usr/bin/python3.
# The JSON record lands in bench/results/canvas-*.json; the table goes to
# stdout. Environment: BUILD (default <root>/build), PORT (default 6392),
# WORKERS (default both; "celeriac" or "python" for one).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${BUILD:-$root/build}" && pwd)
port=${PORT:-6392}
py=/usr/bin/python3
outdir="$here/results"

cli="$build/celeriac"
tasks="$build/examples/libtasks.so"
for f in "$cli" "$tasks"; do
    [ -e "$f" ] || { echo "canvas_bench.sh: missing $f (build first)" >&2; exit 2; }
done
mkdir -p "$outdir"

tmp=$(mktemp -d)
driver=
cleanup() {
    # The driver stops its workers on SIGTERM; Redis goes after them.
    [ -n "$driver" ] && kill "$driver" 2>/dev/null && wait "$driver" 2>/dev/null
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log" --dir "$tmp"
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis did not start" >&2; exit 1; }; sleep 0.05
done

redis="redis://127.0.0.1:$port"
celeriac="celeriac-2=$cli worker -A $tasks -b $redis/0 --result-backend $redis/1 -c 2 -l warning"
python="prefork-2=$py -m celery -A celery_app worker -P prefork -c 2 -l WARNING --without-gossip --without-mingle --without-heartbeat -n prefork2@%h"
case "${WORKERS:-both}" in
    celeriac) set -- --worker "$celeriac" "$@" ;;
    python) set -- --worker "$python" "$@" ;;
    *) set -- --worker "$celeriac" --worker "$python" "$@" ;;
esac
stamp=$(date +%Y%m%d-%H%M%S)
# In the background so a signal reaches the trap (and the trap the
# driver) while it runs.
"$py" "$here/canvas_bench.py" --redis "$redis" --logdir "$tmp" \
    --out "$outdir/canvas-$stamp.json" "$@" &
driver=$!
status=0
wait "$driver" || status=$?
driver=
exit "$status"
