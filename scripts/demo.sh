#!/bin/sh
# The main job on the embedded default: a worker with the example tasks
# and a client that sends tasks and prints their results, both on
# ./demo/celeriac.db (SQLite, WAL mode), no server involved.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
CLI="$BUILD/celeriac"
mkdir -p demo
cd demo
rm -f celeriac.db celeriac.db-wal celeriac.db-shm

"$CLI" worker -A "$BUILD/examples/libtasks.so" -l info -c 2 > worker.log 2>&1 &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null || true' EXIT

echo "== celeriac call tasks.add 2 3 --wait"
"$CLI" call tasks.add 2 3 --wait
echo "== celeriac call tasks.xsum '[1, 2, 3.5]' --wait"
"$CLI" call tasks.xsum '[1, 2, 3.5]' --wait
echo "== celeriac call tasks.echo hello --kw who=world --wait"
"$CLI" call tasks.echo hello --kw who=world --wait
echo "== celeriac call tasks.fail 'it broke' --wait (fails on purpose)"
"$CLI" call tasks.fail 'it broke' --wait || true
ID=$("$CLI" call tasks.mul 6 7)
echo "== celeriac call tasks.mul 6 7 -> $ID; celeriac result $ID --wait"
"$CLI" result "$ID" --wait
echo "== examples/client (the C client API)"
"$BUILD/examples/client"

kill -TERM $WORKER
wait $WORKER || true
trap - EXIT
echo "== worker log (demo/worker.log)"
cat worker.log
