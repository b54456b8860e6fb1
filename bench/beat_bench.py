#!/usr/bin/python3
"""beat_bench.py - one beat driving N entries due every minute: how long
the tick takes to send them all, and beat's CPU and memory, for celeriac
beat and Python Celery 5.2 beat in one run, on one throw-away Redis.

    /usr/bin/python3 bench/beat_bench.py [--n 10000] [--ticks 2] [--port 6393]
                                         [--sides celeriac,celery]

For each side: FLUSHALL, store the N entries (celeriac: bench_beat_entries
through the C API; Celery: a beat_schedule dict of crontab() entries),
start beat, and watch the "celery" list with LLEN every 5 ms through
`--ticks` minute boundaries. A tick's send time runs from the boundary
to the moment the list has grown by N. CPU is beat's utime+stime from
/proc over each tick (boundary to done) and over the idle seconds
between; RSS is VmRSS after the last tick and VmHWM.

Nothing consumes the queue; each side gets its own fresh Redis db state.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")

CELERY_APP = '''
from celery import Celery
from celery.schedules import crontab
app = Celery("beatbench", broker="redis://127.0.0.1:{port}/0")
app.conf.timezone = "UTC"
app.conf.beat_schedule = {{
    "bench.%d" % i: {{"task": "bench.noop", "schedule": crontab(), "args": (i,)}}
    for i in range({n})
}}
'''


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def watch_ticks(r, pid, n, ticks, timeout):
    """Waits for `ticks` minute boundaries and times each one's sends."""
    results = []
    base = r.llen("celery")
    for k in range(ticks):
        boundary = (int(time.time()) // 60 + 1) * 60
        while time.time() < boundary - 0.2:
            time.sleep(0.05)
        cpu0 = proc_cpu(pid)
        target = base + n
        first = None
        while True:
            now = time.time()
            have = r.llen("celery")
            if first is None and have > base:
                first = now
            if have >= target:
                break
            if now > boundary + timeout:
                break
            time.sleep(0.005)
        done = time.time()
        cpu1 = proc_cpu(pid)
        results.append({
            "boundary": boundary,
            "first_ms": round((first - boundary) * 1000) if first else None,
            "done_ms": round((done - boundary) * 1000),
            "sent": have - base,
            "tick_cpu_s": round(cpu1 - cpu0, 3),
        })
        base = have
    # idle CPU over the 20 s after the last tick
    cpu0 = proc_cpu(pid)
    time.sleep(20)
    idle = proc_cpu(pid) - cpu0
    return results, round(idle / 20 * 100, 2)


def run_side(side, args, r, build):
    r.flushall()
    tmp = tempfile.mkdtemp(prefix="beat-bench-")
    url = f"redis://127.0.0.1:{args.port}/0"
    try:
        t0 = time.time()
        if side == "celeriac":
            subprocess.run([os.path.join(build, "bench", "bench_beat_entries"), url, str(args.n)],
                           check=True)
            store_s = time.time() - t0
            cmd = [os.path.join(build, "celeriac"), "beat", "-b", url, "-l", "warning"]
            env = dict(os.environ)
        else:
            with open(os.path.join(tmp, "beatbench.py"), "w") as f:
                f.write(CELERY_APP.format(port=args.port, n=args.n))
            store_s = 0.0
            cmd = ["/usr/bin/python3", "-m", "celery", "-A", "beatbench", "beat", "-l", "WARNING",
                   "-s", os.path.join(tmp, "schedule")]
            env = dict(os.environ, PYTHONPATH=tmp)
        p = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(3)
            if p.poll() is not None:
                raise SystemExit(f"{side} beat exited with {p.returncode}")
            ticks, idle_pct = watch_ticks(r, p.pid, args.n, args.ticks, args.timeout)
            mem = proc_mem(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {"side": side, "n": args.n, "store_s": round(store_s, 2), "ticks": ticks,
                "idle_cpu_pct": idle_pct, "rss_kib": mem.get("VmRSS"), "hwm_kib": mem.get("VmHWM")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--ticks", type=int, default=2)
    ap.add_argument("--port", type=int, default=6393)
    ap.add_argument("--timeout", type=float, default=55.0)
    ap.add_argument("--sides", default="celeriac,celery")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    server = subprocess.Popen(["redis-server", "--port", str(args.port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=args.port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        out = [run_side(s, args, r, args.build) for s in args.sides.split(",")]
    finally:
        server.terminate()
        server.wait()
    print(json.dumps(out, indent=1))
    print()
    print("| beat | tick: first sent | tick: all N sent | CPU per tick | idle CPU | RSS | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for o in out:
        for t in o["ticks"]:
            print(f"| {o['side']} | {t['first_ms']} ms | {t['done_ms']} ms ({t['sent']}) | "
                  f"{t['tick_cpu_s']} s | {o['idle_cpu_pct']}% | {o['rss_kib'] / 1024:.1f} MiB | "
                  f"{o['hwm_kib'] / 1024:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
