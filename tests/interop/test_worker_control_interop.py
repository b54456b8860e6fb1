"""Python Celery 5.2.6's own tools against a celeriac worker on Redis
(remote control and inspection, the worker's side):
  - `celery inspect ping` lists the celeriac worker; stats, active_queues,
    query_task, conf, report, clock and registered parse in Python with
    Celery's shapes;
  - `celery inspect active` shows a running task with its start time and
    process, `celery inspect scheduled` a countdown task the worker holds
    parked until its ETA;
  - `celery control rate_limit` slows a task down (measured) and shows in
    `registered`;
  - `celery control cancel_consumer` stops a queue (a task sent there
    waits) and `add_consumer` resumes it;
  - `celery status` counts a celeriac and a Python worker;
  - a Python worker starting with mingle learns the celeriac worker's
    revokes from its `hello` reply;
  - `celery control shutdown` stops the celeriac worker.

Run through ctest (`ctest -R interop_worker_control`).
"""
import socket
import subprocess
import time
import unittest
import uuid

from harness import HERE, PYTHON, InteropCase, Proc, wait_until

NODE = "cw@interop"


class WorkerControlInterop(InteropCase):

    def celery(self, *args, timeout=60):
        """Runs Python Celery's CLI on this test's broker; returns stdout."""
        cp = subprocess.run([PYTHON, "-m", "celery", "-A", "celery_app", *args],
                            capture_output=True, text=True, timeout=timeout, env=self.env(),
                            cwd=HERE)
        return cp

    def inspect(self, timeout=5):
        return self.app.control.inspect(destination=[NODE], timeout=timeout)

    def test_inspect_from_python(self):
        self.start_celeriac(name="cw", concurrency=2)
        cp = self.celery("inspect", "ping", "-d", NODE, "-t", "5")
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn(f"->  {NODE}: OK", cp.stdout)
        self.assertIn("pong", cp.stdout)
        self.assertIn("1 node online.", cp.stdout)

        # Something to count in stats.
        self.assertEqual(self.app.send_task("tasks.add", args=[2, 3]).get(timeout=30), 5)
        i = self.inspect()
        stats = i.stats()[NODE]
        self.assertEqual(stats["total"].get("tasks.add"), 1)
        self.assertIsInstance(stats["pid"], int)
        self.assertIsInstance(stats["clock"], str)
        self.assertEqual(stats["pool"]["max-concurrency"], 2)
        self.assertEqual(stats["broker"]["transport"], "redis")
        self.assertIn("maxrss", stats["rusage"])
        self.assertGreaterEqual(stats["uptime"], 0)

        queues = i.active_queues()[NODE]
        self.assertEqual([q["name"] for q in queues], ["celery"])
        self.assertEqual(queues[0]["exchange"]["type"], "direct")

        registered = i.registered()[NODE]
        self.assertIn("tasks.add", registered)
        self.assertIn("tasks.sleep", registered)
        self.assertEqual(registered, sorted(registered))

        conf = i.conf()[NODE]
        self.assertEqual(conf["worker_hostname"], NODE)
        self.assertIn("ok", i.report()[NODE])
        self.assertIsInstance(i.clock()[NODE]["clock"], int)
        self.assertEqual(i.query_task("no-such-id")[NODE], {})

        # An unknown command: Celery's error shape, read by Python's client.
        reply = self.app.control.broadcast("nosuchcmd", destination=[NODE], reply=True,
                                           timeout=5)
        self.assertEqual(reply, [{NODE: {"error": "KeyError('nosuchcmd')"}}])

        # Registered through the CLI as well.
        cp = self.celery("inspect", "registered", "-d", NODE, "-t", "5")
        self.assertIn("* tasks.add", cp.stdout)

    def test_active_and_scheduled(self):
        self.start_celeriac(name="cw", concurrency=1)
        running = str(uuid.uuid4())
        self.app.send_task("tasks.sleep", args=[6], task_id=running)
        seen = {}

        def active():
            for req in self.inspect().active().get(NODE, []):
                if req["id"] == running:
                    seen.update(req)
            return bool(seen)
        wait_until(active, 20, 0.1, "the running task in inspect active")
        self.assertEqual(seen["name"], "tasks.sleep")
        self.assertEqual(seen["args"], [6])
        self.assertIsInstance(seen["worker_pid"], int)
        # Its runtime so far, as Flower and `celery inspect` compute it.
        runtime = time.time() - seen["time_start"]
        self.assertGreaterEqual(runtime, 0)
        self.assertLess(runtime, 10)
        cp = self.celery("inspect", "active", "-d", NODE, "-t", "5")
        self.assertIn(running, cp.stdout)

        q = self.inspect().query_task(running)[NODE]
        self.assertEqual(q[running][0], "active")

        later = str(uuid.uuid4())
        self.app.send_task("tasks.add", args=[1, 2], task_id=later, countdown=60)

        def scheduled():
            return [e for e in self.inspect().scheduled().get(NODE, [])
                    if e["request"]["id"] == later]
        entries = wait_until(scheduled, 20, 0.2, "the countdown task in inspect scheduled")
        self.assertEqual(entries[0]["request"]["name"], "tasks.add")
        self.assertIn("eta", entries[0])
        cp = self.celery("inspect", "scheduled", "-d", NODE, "-t", "5")
        self.assertIn(later, cp.stdout)

    def test_rate_limit_changes_the_rate(self):
        self.start_celeriac(name="cw", concurrency=2)
        cp = self.celery("control", "rate_limit", "tasks.add", "2/s", "-d", NODE, "-t", "5")
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("new rate limit set successfully", cp.stdout)
        self.assertIn("tasks.add [rate_limit=2/s]", self.inspect().registered()[NODE])
        t0 = time.monotonic()
        results = [self.app.send_task("tasks.add", args=[i, i]) for i in range(5)]
        self.assertEqual([r.get(timeout=30) for r in results], [2 * i for i in range(5)])
        limited = time.monotonic() - t0
        # The first at once, the others half a second apart.
        self.assertGreaterEqual(limited, 1.8)

        cp = self.celery("control", "rate_limit", "tasks.add", "0", "-d", NODE, "-t", "5")
        self.assertIn("rate limit disabled successfully", cp.stdout)
        t0 = time.monotonic()
        results = [self.app.send_task("tasks.add", args=[i, i]) for i in range(5)]
        self.assertEqual([r.get(timeout=30) for r in results], [2 * i for i in range(5)])
        self.assertLess(time.monotonic() - t0, limited)

    def test_cancel_and_add_consumer(self):
        self.start_celeriac(name="cw", concurrency=1)
        cp = self.celery("control", "cancel_consumer", "celery", "-d", NODE, "-t", "5")
        self.assertIn("no longer consuming from celery", cp.stdout)
        self.assertEqual(self.inspect().active_queues()[NODE], [])
        waiting = str(uuid.uuid4())
        self.app.send_task("tasks.add", args=[4, 4], task_id=waiting)
        # Nothing to wait for: the point is that it does not run.
        time.sleep(2)
        self.assertIsNone(self.meta(waiting))
        self.assertEqual(self.rb.llen("celery"), 1)

        cp = self.celery("control", "add_consumer", "extra", "-d", NODE, "-t", "5")
        self.assertIn("add consumer extra", cp.stdout)
        # kombu's binding, as Celery's worker adds it.
        wait_until(lambda: self.rb.sismember("_kombu.binding.extra",
                                             b"extra\x06\x16\x06\x16extra"), 10,
                   what="the binding of the added queue")
        cp = self.celery("control", "add_consumer", "celery", "-d", NODE, "-t", "5")
        self.assertIn("add consumer celery", cp.stdout)
        self.assertEqual(self.wait_results([waiting])[waiting]["result"], 8)
        names = sorted(q["name"] for q in self.inspect().active_queues()[NODE])
        self.assertEqual(names, ["celery", "extra"])

    def test_python_mingle_learns_revokes(self):
        self.start_celeriac(name="cw", concurrency=1)
        victim = str(uuid.uuid4())
        self.app.control.revoke(victim)
        wait_until(lambda: victim in self.inspect().revoked().get(NODE, []), 10, 0.1,
                   "the celeriac worker to know the revoke")
        # Started after the revoke: only mingle can tell it.
        node = f"pym@{socket.gethostname()}"
        argv = [PYTHON, "-m", "celery", "-A", "celery_app", "worker", "-P", "solo", "-n", node,
                "--without-gossip", "--without-heartbeat", "-Q", "elsewhere", "-l", "info"]
        py = Proc("pym", argv, self.tmp, env=self.env(), cwd=HERE)
        self.procs.append(py)
        py.wait_log(r"mingle: sync with 1 nodes", 30)
        # Celery starts its control consumer after mingle: a broadcast sent
        # before it is ready finds no queue bound and is lost.
        py.wait_log(r"ready\.", 30)
        revoked = self.app.control.inspect(destination=[node], timeout=5).revoked()
        self.assertIn(victim, revoked[node])

    def test_status_and_shutdown(self):
        w = self.start_celeriac(name="cw", concurrency=1)
        self.start_python(concurrency=1)
        cp = self.celery("status", "-t", "3")
        self.assertIn(f"->  {NODE}: OK", cp.stdout)
        self.assertIn("2 nodes online.", cp.stdout)

        self.celery("control", "shutdown", "-d", NODE, "-t", "2")
        wait_until(lambda: not w.alive(), 20, 0.1, "the celeriac worker to exit")
        self.assertIn("Got shutdown from remote", w.log())


if __name__ == "__main__":
    unittest.main()
