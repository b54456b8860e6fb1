#!/bin/sh
# time_limit_bench.sh - how late a hard time limit is enforced (issue 7).
#
#   bench/time_limit_bench.sh [N]        (default N=40)
#
# Starts a worker (-c 2, --time-limit 1, SQLite in a temporary
# directory) with the test task module, sends N test.spin tasks (a C busy
# loop that never ends by itself) and waits until the worker has killed
# N children. The worker logs, for each kill, how long after the task's
# deadline (its start as the parent saw it + the limit) the SIGKILL went
# out; this prints p50, p99 and max of that lateness, and the wall time
# for all N (each spin costs the limit plus a child respawn).
#
# Environment: BUILD (default <root>/build).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${BUILD:-$root/build}" && pwd)
n=${1:-40}
cli="$build/celeriac"
tasks="$build/tests/libtesttasks.so"
for f in "$cli" "$tasks"; do
    [ -e "$f" ] || { echo "time_limit_bench.sh: missing $f (build first)" >&2; exit 2; }
done

tmp=$(mktemp -d)
worker_pid=
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cd "$tmp"
url="sqlite:///$tmp/celeriac.db"

: >worker.log
"$cli" worker -A "$tasks" -b "$url" -c 2 --time-limit 1 -l info >worker.log 2>&1 &
worker_pid=$!
i=0
until grep -q "ready\." worker.log; do
    i=$((i + 1))
    [ "$i" -lt 300 ] || { echo "worker did not start" >&2; cat worker.log >&2; exit 1; }
    sleep 0.1
done

start=$(date +%s.%N)
i=0
while [ "$i" -lt "$n" ]; do
    "$cli" call test.spin -b "$url" >/dev/null
    i=$((i + 1))
done
# Each spin takes 1 s on one of 2 children: allow 3 s per pair and 30 s.
limit=$((n * 3 / 2 + 30))
waited=0
while [ "$(grep -c "killed at the hard time limit" worker.log)" -lt "$n" ]; do
    waited=$((waited + 1))
    [ "$waited" -lt $((limit * 10)) ] || { echo "only $(grep -c "killed at the hard" worker.log) of $n killed" >&2; exit 1; }
    sleep 0.1
done
end=$(date +%s.%N)

grep "killed at the hard time limit" worker.log |
    sed 's/.*limit, \([0-9.]*\) ms after the deadline.*/\1/' | sort -n |
    awk -v wall="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" '
        { v[NR] = $1 }
        END {
            p50 = v[int((NR - 1) * 0.50) + 1]
            p99 = v[int((NR - 1) * 0.99) + 1]
            printf "hard limit 1 s, %d tasks, -c 2: kill - deadline p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.1f s wall\n", NR, p50, p99, v[NR], wall
        }'
failures=$(grep -c "Hard time limit (1s) exceeded for test.spin" worker.log)
echo "TimeLimitExceeded logged for $failures of $n tasks"
