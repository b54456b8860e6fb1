#!/bin/sh
# celeriac vs Python Celery 5.2 on SQLite, one after the other on this
# machine, printed as one Markdown table:
#
#   bench/sqlite_side_by_side.sh [BUILD_DIR]      (default: <repo>/build)
#
# celeriac: bench/bench_sqlite.c on the embedded default (./celeriac.db).
# Celery:   bench/celery_sqlite_bench.py, kombu's sqla transport on a SQLite
#           file and the db result backend on another, at Celery's defaults;
#           then once more with both polls at BENCH_CELERY_TUNED_POLL seconds
#           (set BENCH_CELERY_TUNED_POLL= to skip that row).
# Celery runs fewer tasks and round trips (it is two orders of magnitude
# slower); the N of each row is in the table. Knobs (environment):
# BENCH_N=20000 BENCH_TRIPS=1000 BENCH_CELERY_N=2000 BENCH_CELERY_TRIPS=200
# BENCH_CELERY_TUNED_POLL=0.01 BENCH_CONCURRENCY=2 PYTHON=/usr/bin/python3 (Debian's
# python3-celery and python3-sqlalchemy; not a pyenv/virtualenv python3).
# (Not CELERIAC_*: the celeriac worker refuses unknown CELERIAC_ variables.)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../build}" && pwd)
BENCH_N=${BENCH_N:-20000}
BENCH_TRIPS=${BENCH_TRIPS:-1000}
BENCH_CELERY_N=${BENCH_CELERY_N:-2000}
BENCH_CELERY_TRIPS=${BENCH_CELERY_TRIPS:-200}
BENCH_CELERY_TUNED_POLL=${BENCH_CELERY_TUNED_POLL-0.01}
CONCURRENCY=${BENCH_CONCURRENCY:-2}
PYTHON=${PYTHON:-/usr/bin/python3}

OUT=$(mktemp -d /tmp/side-by-side-XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# The worker's banner shares bench_sqlite's stdout: keep the JSON line only.
echo "celeriac: N=$BENCH_N, $BENCH_TRIPS round trips ..." >&2
"$BUILD/bench/bench_sqlite" "$BUILD/celeriac" "$BUILD/examples/libtasks.so" \
    "$BENCH_N" "$BENCH_TRIPS" "$CONCURRENCY" >"$OUT/celeriac.raw"
grep '^{' "$OUT/celeriac.raw" | tail -n 1 >"$OUT/celeriac.json"

echo "Celery (defaults): N=$BENCH_CELERY_N, $BENCH_CELERY_TRIPS round trips ..." >&2
"$PYTHON" "$HERE/celery_sqlite_bench.py" --n "$BENCH_CELERY_N" --trips "$BENCH_CELERY_TRIPS" \
    --concurrency "$CONCURRENCY" >"$OUT/celery.json"

if [ -n "$BENCH_CELERY_TUNED_POLL" ]; then
    echo "Celery (polls at $BENCH_CELERY_TUNED_POLL s): N=$BENCH_CELERY_N, $BENCH_CELERY_TRIPS round trips ..." >&2
    "$PYTHON" "$HERE/celery_sqlite_bench.py" --n "$BENCH_CELERY_N" --trips "$BENCH_CELERY_TRIPS" \
        --concurrency "$CONCURRENCY" --broker-poll "$BENCH_CELERY_TUNED_POLL" \
        --result-poll "$BENCH_CELERY_TUNED_POLL" >"$OUT/celery_tuned.json"
fi

for f in "$OUT"/*.json; do
    echo "$(basename "$f" .json): $(cat "$f")" >&2
done

"$PYTHON" - "$OUT" "$BENCH_TRIPS" <<'EOF'
import json, os, sys

out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + '.json')
    return json.load(open(path)) if os.path.exists(path) else None

cel, py, tuned = load('celeriac'), load('celery'), load('celery_tuned')
cols = [('enqueue tasks/s', 'enqueue_per_s', 1), ('drain tasks/s', 'drain_per_s', 1),
        ('round trip p50 ms', 'round_trip_p50_ms', 1), ('round trip p99 ms', 'round_trip_p99_ms', 1),
        ('idle RSS MiB', 'idle_rss_kib', 1024), ('RSS after drain MiB', 'after_drain_rss_kib', 1024)]

def num(v):
    return '%.0f' % v if v >= 100 else '%.3g' % v

def ratio(a, b):
    r = a / b
    return '%.3g×' % r if r >= 1 else '%.3g× (1/%s)' % (r, num(1 / r))

rows = [('celeriac (embedded SQLite, -c %d)' % cel['concurrency'], cel, cel['n'], sys.argv[2])]
rows.append(('Celery 5.2.6 sqla+sqlite / db+sqlite, defaults (polls %gs broker, %gs result)'
             % (py['broker_polling_interval_s'], py['result_poll_interval_s']),
             py, py['n'], py['round_trips']))
if tuned:
    rows.append(('Celery 5.2.6, tuned polls (%gs broker, %gs result)'
                 % (tuned['broker_polling_interval_s'], tuned['result_poll_interval_s']),
                 tuned, tuned['n'], tuned['round_trips']))

print('| | N drained | round trips | ' + ' | '.join(c[0] for c in cols) + ' |')
print('|---|---:|---:|' + '---:|' * len(cols))
for label, d, n, trips in rows:
    print('| %s | %s | %s | ' % (label, n, trips)
          + ' | '.join(num(d[k] / div) for _, k, div in cols) + ' |')
for label, d in (('defaults', py), ('tuned polls', tuned)):
    if d:
        print('| ratio celeriac/Celery (%s) | | | ' % label
              + ' | '.join(ratio(cel[k], d[k]) for _, k, _ in cols) + ' |')
EOF
