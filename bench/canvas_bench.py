"""canvas_bench.py - workflows on Redis: celeriac workers vs Python Celery
workers, one run, one Redis, the same Python client (issue 8 figures).

Driven by bench/canvas_bench.sh, which starts a throw-away Redis and
passes the worker commands. For each worker, alone on the queue:

  chord   chord(tasks.add(i, i) for i < N) | tasks.xsum: seconds from
          apply_async to the body's result in the client (bound by the
          Python client's sending), then the same chord held and
          released (below): the workers' time alone
  chain   chain of L tasks.add links end to end (add(0, 1) then add(1)
          L-1 times), released: seconds to the last result
  link    M tasks.add with link=tasks.add.s(1) vs M without, released:
          seconds until every (callback) result is stored; the
          difference per task is what a link costs

"Released": the client publishes to a list no worker reads (bench.hold),
then RENAMEs it to the worker's queue (celery) and starts the clock, so
Python's own sending speed (about 1-2k messages/s) is not measured.

The tasks are the interop app's (tests/interop/celery_app.py) and the
example module's (examples/tasks.c): the same names and values on both
sides. Prints a Markdown table and writes a JSON record.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))

import redis  # noqa: E402
from celery import chain, chord  # noqa: E402

import celery_app  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Worker:
    def __init__(self, name, cmd, env, logdir):
        self.name = name
        self.logpath = os.path.join(logdir, f"{name}.log")
        self._log = open(self.logpath, "ab")
        self.p = subprocess.Popen(shlex.split(cmd), stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env,
                                  cwd=os.path.join(HERE, "..", "tests", "interop"),
                                  start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        self._log.close()


def wait_all(app, ids, timeout):
    """Until every id has a ready result (GET of the meta keys, batched)."""
    r = app.backend.client
    keys = [f"celery-task-meta-{i}" for i in ids]
    deadline = time.monotonic() + timeout
    pending = keys
    while pending:
        vals = []
        for k in range(0, len(pending), 1000):
            vals += r.mget(pending[k:k + 1000])
        pending = [k for k, v in zip(pending, vals)
                   if v is None or json.loads(v)["status"] not in ("SUCCESS", "FAILURE")]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} results missing")
        if pending:
            time.sleep(0.005)


HOLD = "bench.hold"


def release(app, n):
    """Waits until the n held messages are all in the hold list, then
    moves the list under the worker's queue in one step (RENAME): the
    clock starts with every message already in Redis, so what follows is
    the workers' time, not the Python client's sending."""
    r = redis.Redis.from_url(app.conf.broker_url)
    try:
        deadline = time.monotonic() + 600
        while r.llen(HOLD) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {r.llen(HOLD)} of {n} messages held")
            time.sleep(0.01)
        t0 = time.monotonic()
        r.rename(HOLD, "celery")
        return t0
    finally:
        r.close()


def bench_chord(app, n, timeout, held):
    add = app.signature("tasks.add")
    header = [add.clone(args=(i, i)) for i in range(n)]
    if held:
        header = [h.set(queue=HOLD) for h in header]
    t0 = time.monotonic()
    res = chord(header, app.signature("tasks.xsum")).apply_async()
    if held:
        t0 = release(app, n)
    # Polled, not AsyncResult.get(): Celery's client SUBSCRIBEs to the
    # channel of every task it sends (RedisBackend.on_task_call), so a
    # get() here first drains, in Python, one PUBLISH per header result
    # (1.4-3 s for 5,000 members, whatever the worker), which hid the
    # workers' own time.
    wait_all(app, [res.id], timeout)
    dt = time.monotonic() - t0
    value = app.AsyncResult(res.id).get(timeout=timeout)
    assert value == n * (n - 1), value
    return dt


def bench_chain(app, length, timeout):
    links = [app.signature("tasks.add", args=(0, 1), options={"queue": HOLD})]
    links += [app.signature("tasks.add", args=(1,)) for _ in range(length - 1)]
    res = chain(*links).apply_async()
    t0 = release(app, 1)
    value = app.AsyncResult(res.id).get(timeout=timeout)
    dt = time.monotonic() - t0
    assert value == length, value
    return dt


def bench_link(app, m, timeout, linked):
    ids = []
    for i in range(m):
        if linked:
            cb = str(uuid.uuid4())
            app.send_task("tasks.add", (i, i), queue=HOLD,
                          link=app.signature("tasks.add", args=(1,), options={"task_id": cb}))
            ids.append(cb)
        else:
            ids.append(app.send_task("tasks.add", (i, i), queue=HOLD).id)
    t0 = release(app, m)
    wait_all(app, ids, timeout)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT")
    ap.add_argument("--worker", action="append", required=True, help="NAME=COMMAND")
    ap.add_argument("--chord-n", type=int, default=10000)
    ap.add_argument("--chain-n", type=int, default=1000)
    ap.add_argument("--link-n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--logdir", required=True)
    ap.add_argument("--out", required=True, help="JSON file to write")
    a = ap.parse_args()

    broker, backend = f"{a.redis}/0", f"{a.redis}/1"
    env = dict(os.environ, CEL_INTEROP_BROKER=broker, CEL_INTEROP_BACKEND=backend,
               PYTHONDONTWRITEBYTECODE="1")
    # SIGTERM (canvas_bench.sh interrupted) unwinds through the finally
    # below, so no worker outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rcli = redis.Redis.from_url(f"{a.redis}/0")
    rows = []
    for spec in a.worker:
        name, cmd = spec.split("=", 1)
        # A worker left over from an interrupted run would reconnect to a
        # new Redis on the same port and silently help: refuse to measure.
        strays = [c for c in rcli.client_list() if c.get("cmd") in ("brpop", "blpop", "bzpopmin")]
        if strays:
            sys.exit(f"canvas_bench: another consumer is connected to {a.redis}: {strays}")
        rcli.flushall()
        app = celery_app.make_app(broker, backend)
        w = Worker(name, cmd, env, a.logdir)
        try:
            # Warm-up: the worker is consuming and every connection is open.
            app.send_task("tasks.add", (1, 1)).get(timeout=60)
            row = {"worker": name, "cmd": cmd}
            log(f"== {name}: chord of {a.chord_n}, from apply")
            row["chord_apply_s"] = bench_chord(app, a.chord_n, a.timeout, False)
            log(f"   {row['chord_apply_s']:.2f} s; chord of {a.chord_n}, held then released")
            row["chord_s"] = bench_chord(app, a.chord_n, a.timeout, True)
            log(f"   {row['chord_s']:.2f} s; chain of {a.chain_n}")
            row["chain_s"] = bench_chain(app, a.chain_n, a.timeout)
            log(f"   {row['chain_s']:.2f} s; {a.link_n} plain, {a.link_n} linked")
            row["plain_s"] = bench_link(app, a.link_n, a.timeout, False)
            row["linked_s"] = bench_link(app, a.link_n, a.timeout, True)
            row["link_overhead_ms"] = (row["linked_s"] - row["plain_s"]) / a.link_n * 1e3
            log(f"   plain {row['plain_s']:.2f} s, linked {row['linked_s']:.2f} s")
            rows.append(row)
        finally:
            w.stop()
            rc = app.backend.result_consumer
            rc.stop()
            rc._pubsub = None
            app.close()

    record = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "chord_n": a.chord_n, "chain_n": a.chain_n, "link_n": a.link_n,
              "load": os.getloadavg(), "rows": rows}
    with open(a.out, "w") as f:
        json.dump(record, f, indent=2)
    print(f"| worker | chord of {a.chord_n:,}, apply to body result | same, released "
          f"| chain of {a.chain_n:,} | {a.link_n:,} plain | {a.link_n:,} with link "
          f"| link cost per task |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['worker']} | {r['chord_apply_s']:.2f} s | {r['chord_s']:.2f} s "
              f"| {r['chain_s']:.2f} s | {r['plain_s']:.2f} s | {r['linked_s']:.2f} s "
              f"| {r['link_overhead_ms']:.2f} ms |")
    if len(rows) >= 2:
        base = rows[-1]
        for r in rows[:-1]:
            print(f"\n{r['worker']} vs {base['worker']}: chord from apply "
                  f"{base['chord_apply_s'] / r['chord_apply_s']:.1f}x, released "
                  f"{base['chord_s'] / r['chord_s']:.1f}x, chain "
                  f"{base['chain_s'] / r['chain_s']:.1f}x, link cost "
                  f"{base['link_overhead_ms'] / max(r['link_overhead_ms'], 1e-3):.1f}x")

if __name__ == "__main__":
    main()
