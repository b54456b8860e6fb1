#!/usr/bin/python3
"""celery_sqlite_bench.py - bench_sqlite's four measurements for Python Celery.

    /usr/bin/python3 bench/celery_sqlite_bench.py [--n N] [--trips T]
        [--concurrency C] [--broker-poll S] [--result-poll S]

The counterpart of bench/bench_sqlite.c for Python Celery on SQLite files,
the closest Celery has to celeriac's embedded default: kombu's SQLAlchemy
transport (sqla+sqlite:///DIR/broker.db) and the database result backend
(db+sqlite:///DIR/results.db). Runs in a fresh temp dir, where it writes the
app module (tasks.py, defining tasks.noop), and prints one JSON line with
bench_sqlite's keys plus a few that say how Celery was configured:

 - enqueue: tasks/s of N app.send_task("tasks.noop") from this process, no
   worker running (the engine and tables are created before the clock runs);
 - drain: tasks/s of a worker (prefork, -c C) running the N queued tasks,
   timed from the worker's start until celery_taskmeta in results.db has N
   rows, so start-up is included as in bench_sqlite;
 - round trip: p50/p99 of send_task(...).get() one at a time. The database
   backend has no push: get() polls the table every --result-poll seconds
   (Celery's default, 0.5), and an idle worker polls the broker table every
   --broker-poll seconds (kombu's virtual-transport default, 1.0);
 - RSS: VmRSS summed over the worker's whole process tree (the prefork parent
   and its pool children, walked recursively), for a fresh idle worker on an
   empty queue and for the drain's worker once it has settled.

Needs Debian's python3-celery and python3-sqlalchemy: run it with
/usr/bin/python3, not a python3 from a virtualenv or pyenv. A benchmark, not
a test: it asserts nothing about speed.
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

# The app module the worker loads with -A tasks: the task is named exactly
# tasks.noop, like examples/tasks.c's. Configuration comes from the
# environment so the worker and this process share one definition.
APP_MODULE = '''\
import os

from celery import Celery

app = Celery("tasks",
             broker=os.environ["BENCH_BROKER_URL"],
             backend=os.environ["BENCH_RESULT_URL"])

# Only for the tuned run. kombu 5.2's sqla transport hands every transport
# option to create_engine(), so broker_transport_options={"polling_interval"}
# is a TypeError there: set the transport's class default instead.
if os.environ.get("BENCH_BROKER_POLL"):
    from kombu.transport import sqlalchemy as _sqla
    _sqla.Transport.polling_interval = float(os.environ["BENCH_BROKER_POLL"])


@app.task(name="tasks.noop")
def noop():
    return None
'''

CELERY_WORKER = [sys.executable, '-m', 'celery', '-A', 'tasks', 'worker', '-P', 'prefork']
CELERY_FLAGS = ['-l', 'WARNING', '--without-gossip', '--without-mingle', '--without-heartbeat']


def die(what):
    print('celery_sqlite_bench: ' + what, file=sys.stderr)
    sys.exit(1)


def proc_table():
    """pid -> (ppid, VmRSS kB) for every process we can read."""
    table = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        ppid, rss = -1, 0
        try:
            with open('/proc/%s/status' % name) as f:
                for line in f:
                    if line.startswith('PPid:'):
                        ppid = int(line.split()[1])
                    elif line.startswith('VmRSS:'):
                        rss = int(line.split()[1])
        except (OSError, ValueError):
            continue
        table[int(name)] = (ppid, rss)
    return table


def tree_pids(root, table):
    """root and all its descendants (the prefork pool forks from the parent)."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_rss_kb(root):
    table = proc_table()
    return sum(table[p][1] for p in tree_pids(root, table) if p in table)


class Env:
    """One directory with its own broker.db and results.db."""

    def __init__(self, path, broker_poll):
        self.path = path
        with open(os.path.join(path, 'tasks.py'), 'w') as f:
            f.write(APP_MODULE)
        self.env = dict(os.environ)
        self.env['BENCH_BROKER_URL'] = 'sqla+sqlite:///' + os.path.join(path, 'broker.db')
        self.env['BENCH_RESULT_URL'] = 'db+sqlite:///' + os.path.join(path, 'results.db')
        self.env['BENCH_BROKER_POLL'] = '' if broker_poll is None else repr(broker_poll)
        self.env['PYTHONPATH'] = path
        self.results_db = os.path.join(path, 'results.db')

    def start_worker(self, concurrency):
        log = open(os.path.join(self.path, 'worker.log'), 'a')
        # A session of its own, so a stuck worker can be killed with its pool.
        return subprocess.Popen(CELERY_WORKER + ['-c', str(concurrency)] + CELERY_FLAGS,
                                cwd=self.path, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)


def stop_worker(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # warm shutdown, as for celeriac
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the pool is left
    except ProcessLookupError:
        pass
    proc.wait()


def count_results(db):
    try:
        return db.execute('SELECT count(*) FROM celery_taskmeta').fetchone()[0]
    except sqlite3.OperationalError:  # no table yet, or locked for a moment
        return 0


def wait_for_pool(proc, concurrency, limit=60.0):
    """Until the prefork parent has its pool children (Python start-up is slow)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if proc.poll() is not None:
            die('the idle worker exited (see worker.log)')
        table = proc_table()
        if len(tree_pids(proc.pid, table)) >= 1 + concurrency:
            return time.monotonic() - t0
        time.sleep(0.05)
    die('the idle worker did not start its pool in %.0f s' % limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=2000, help='tasks to enqueue and drain')
    ap.add_argument('--trips', type=int, default=200, help='timed round trips')
    ap.add_argument('--concurrency', type=int, default=2)
    ap.add_argument('--broker-poll', type=float, default=None,
                    help="the sqla transport's polling_interval (default: kombu's, 1.0 s)")
    ap.add_argument('--result-poll', type=float, default=0.5,
                    help="AsyncResult.get(interval=...) (default: Celery's, 0.5 s)")
    ap.add_argument('--keep', action='store_true', help='keep the temp dir')
    args = ap.parse_args()

    import celery
    import kombu
    import sqlalchemy

    top = tempfile.mkdtemp(prefix='celery-bench-')
    env = Env(top, args.broker_poll)
    os.environ.update({k: env.env[k] for k in
                       ('BENCH_BROKER_URL', 'BENCH_RESULT_URL', 'BENCH_BROKER_POLL')})
    sys.path.insert(0, top)
    import tasks  # the module just written; the worker imports the same file
    app = tasks.app

    # Create the engine, the kombu tables and the queue row before the clock
    # runs, as bench_sqlite connects (and creates celeriac.db) before it.
    with app.connection_for_write() as conn:
        conn.default_channel._get_or_create(app.conf.task_default_queue)
        broker_poll = conn.transport.polling_interval  # what the worker will use

    # enqueue
    t0 = time.monotonic()
    for _ in range(args.n):
        app.send_task('tasks.noop')
    enqueue_s = time.monotonic() - t0

    # idle RSS of a fresh worker, on an empty queue of its own
    fresh = os.path.join(top, 'fresh')
    os.mkdir(fresh)
    idle = Env(fresh, args.broker_poll).start_worker(args.concurrency)
    startup_s = wait_for_pool(idle, args.concurrency)
    time.sleep(1.0)  # let the pool children finish importing
    fresh_rss_kb = tree_rss_kb(idle.pid)
    stop_worker(idle)

    # drain
    db = sqlite3.connect(env.results_db, timeout=5.0)
    t0 = time.monotonic()
    worker = env.start_worker(args.concurrency)
    while count_results(db) < args.n:
        if time.monotonic() - t0 > 900 or worker.poll() is not None:
            stop_worker(worker)
            die('drain: the worker exited or took more than 900 s (see %s/worker.log)' % top)
        time.sleep(0.002)
    drain_s = time.monotonic() - t0

    # RSS after the drain, once it settles
    time.sleep(0.5)
    rss_kb = tree_rss_kb(worker.pid)

    # round trips (a few untimed first, as bench_sqlite does 20)
    warm = min(20, max(1, args.trips // 10))
    lat = []
    for i in range(args.trips + warm):
        s = time.monotonic()
        app.send_task('tasks.noop').get(timeout=30, interval=args.result_poll)
        if i >= warm:
            lat.append((time.monotonic() - s) * 1e3)
    lat.sort()
    p50, p99 = lat[args.trips // 2], lat[(args.trips * 99) // 100]

    stop_worker(worker)
    db.close()
    print(json.dumps({
        'n': args.n,
        'concurrency': args.concurrency,
        'enqueue_per_s': round(args.n / enqueue_s),
        'drain_per_s': round(args.n / drain_s),
        'round_trip_p50_ms': round(p50, 3),
        'round_trip_p99_ms': round(p99, 3),
        'idle_rss_kib': fresh_rss_kb,
        'after_drain_rss_kib': rss_kb,
        'round_trips': args.trips,
        'broker_polling_interval_s': broker_poll,
        'result_poll_interval_s': args.result_poll,
        'worker_startup_s': round(startup_s, 3),
        'versions': 'celery %s, kombu %s, sqlalchemy %s, python %s' % (
            celery.__version__, kombu.__version__, sqlalchemy.__version__,
            sys.version.split()[0]),
    }))
    sys.stdout.flush()
    if args.keep:
        print('celery_sqlite_bench: kept ' + top, file=sys.stderr)
    else:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == '__main__':
    main()
