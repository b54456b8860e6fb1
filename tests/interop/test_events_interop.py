"""Monitoring events between a celeriac worker and Python Celery 5.2.6 on
Redis: Celery's own event receiver (app.events.Receiver, what `celery
events` and flower run) feeding celery.events.state.State sees

  - the worker online, kept alive by its heartbeats, with Celery's fields;
  - with -E, a task's received/started/succeeded (result and runtime) and
    a failing task's failed (exception repr and traceback), sent batched
    as task.multi;
  - the worker offline at its shutdown;
  - without -E, heartbeats but no task events.

Run through ctest (`ctest -R interop_events`).
"""
import threading
import time
import unittest

from harness import InteropCase, wait_until

NODE = "celeriac@interop"


class Capture:
    """Celery's receiver on a thread: every event, and the State it feeds."""

    def __init__(self, app):
        self.app = app
        self.state = app.events.State()
        self.events = []
        self.lock = threading.Lock()
        self.conn = app.connection_for_read()
        self.recv = app.events.Receiver(self.conn, handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error = None
        self.thread.start()

    def _on_event(self, event):
        with self.lock:
            self.events.append(dict(event))
            self.state.event(event)

    def _run(self):
        try:
            self.recv.capture(limit=None, timeout=None, wakeup=False)
        except Exception as e:  # reported by the test that reads it
            if not self.recv.should_stop:
                self.error = e

    def stop(self):
        self.recv.should_stop = True
        self.thread.join(10)
        self.conn.release()

    def of_type(self, prefix):
        with self.lock:
            return [e for e in self.events if e["type"].startswith(prefix)]

    def task(self, task_id):
        with self.lock:
            return self.state.tasks.get(task_id)

    def worker(self):
        with self.lock:
            return self.state.workers.get(NODE)


class EventsInterop(InteropCase):

    def capture(self):
        cap = Capture(self.app)
        self.addCleanup(cap.stop)
        # Subscribed (PSUBSCRIBE /0.celeryev/*) before the worker starts,
        # so worker-online is not missed.
        wait_until(lambda: self.rb.execute_command("PUBSUB", "NUMPAT") >= 1, 10,
                   what="the receiver to subscribe")
        return cap

    def wait_task_state(self, cap, task_id, state, timeout=15):
        return wait_until(lambda: (t := cap.task(task_id)) is not None and t.state == state
                          and t, timeout, what=f"task {task_id} to be {state} in State")

    def test_state_follows_worker_and_tasks(self):
        cap = self.capture()
        w = self.start_celeriac("-E")
        worker = wait_until(lambda: (x := cap.worker()) and x.alive and x, 10,
                            what="the worker online in State")
        online = cap.of_type("worker-online")[0]
        self.assertEqual(online["sw_ident"], "celeriac")
        self.assertEqual(online["sw_sys"], "Linux")
        self.assertEqual(online["freq"], 2.0)
        self.assertEqual(len(online["loadavg"]), 3)

        ok = self.app.send_task("tasks.add", args=[2, 3])
        self.assertEqual(ok.get(timeout=30), 5)
        t = self.wait_task_state(cap, ok.id, "SUCCESS")
        self.assertEqual(t.name, "tasks.add")
        self.assertEqual(t.args, "[2, 3]")  # the argsrepr the client wrote
        self.assertEqual(t.kwargs, "{}")
        self.assertEqual(t.result, "5")
        self.assertGreater(t.runtime, 0)
        self.assertIsNotNone(t.received)
        self.assertIsNotNone(t.started)
        self.assertLessEqual(t.received, t.started)
        self.assertLessEqual(t.started, t.succeeded)
        self.assertEqual(t.worker.hostname, NODE)

        bad = self.app.send_task("tasks.fail", kwargs={"message": "boom"})
        t = self.wait_task_state(cap, bad.id, "FAILURE")
        self.assertEqual(t.exception, "ValueError('boom')")
        self.assertIn("ValueError", t.traceback or "")

        # Task events travel batched, as Python workers send them.
        self.assertTrue(any(e.get("type", "").startswith("task-") for e in cap.events))
        # Alive through heartbeats: two more arrive, two seconds apart.
        n = len(cap.of_type("worker-heartbeat"))
        wait_until(lambda: len(cap.of_type("worker-heartbeat")) >= n + 2, 8,
                   what="two more heartbeats")
        beats = cap.of_type("worker-heartbeat")
        gap = beats[-1]["timestamp"] - beats[-2]["timestamp"]
        self.assertAlmostEqual(gap, 2.0, delta=0.5)
        self.assertEqual(beats[-1]["processed"], 2)
        self.assertEqual(beats[-1]["active"], 0)
        self.assertTrue(worker.alive)
        # Lamport clocks only go forward.
        clocks = [e["clock"] for e in cap.events if e.get("hostname") == NODE]
        self.assertEqual(clocks, sorted(clocks))

        w.stop()
        wait_until(lambda: cap.of_type("worker-offline"), 10, what="worker-offline")
        self.assertFalse(cap.worker().alive)
        self.assertIsNone(cap.error)

    def test_task_sent_from_celeriac_client(self):
        cap = self.capture()
        self.start_celeriac("-E")
        cp = self.celeriac("call", "tasks.add", "4", "5", "--wait", "-b", self.broker_url,
                           "--result-backend", self.backend_url,
                           "--set", "task_send_sent_event=true", check=True)
        self.assertEqual(cp.stdout.strip().splitlines()[-1], "9")
        sent = wait_until(lambda: cap.of_type("task-sent"), 10, what="task-sent")[0]
        self.assertRegex(sent["hostname"], r"^gen\d+@")
        self.assertEqual(sent["name"], "tasks.add")
        self.assertEqual(sent["args"], "(4, 5)")
        self.assertEqual(sent["queue"], "celery")
        self.assertEqual(sent["routing_key"], "celery")
        t = self.wait_task_state(cap, sent["uuid"], "SUCCESS")
        self.assertIsNotNone(t.sent)
        self.assertEqual(t.result, "9")
        # Off (the default): no task-sent.
        self.celeriac("call", "tasks.add", "1", "1", "--wait", "-b", self.broker_url,
                      "--result-backend", self.backend_url, check=True)
        wait_until(lambda: len(cap.of_type("task-succeeded")) >= 2, 10, what="the second task")
        self.assertEqual(len(cap.of_type("task-sent")), 1)

    def test_without_events_flag_only_worker_events(self):
        cap = self.capture()
        self.start_celeriac()
        wait_until(lambda: (x := cap.worker()) and x.alive, 10, what="the worker online")
        r = self.app.send_task("tasks.add", args=[1, 1])
        self.assertEqual(r.get(timeout=30), 2)
        # A batch would go out within 100 ms; two heartbeats take longer.
        n = len(cap.of_type("worker-heartbeat"))
        wait_until(lambda: len(cap.of_type("worker-heartbeat")) >= n + 2, 8,
                   what="two heartbeats after the task")
        self.assertEqual(cap.of_type("task-"), [])
        self.assertEqual(cap.of_type("worker-heartbeat")[-1]["processed"], 1)


if __name__ == "__main__":
    unittest.main()
