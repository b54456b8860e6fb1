"""Retries and progress states between celeriac and Python Celery 5.2.6
on Redis (issue 7):

  - a Python client sees MaxRetriesExceededError from AsyncResult.get()
    when a celeriac worker gives up retrying;
  - a Python client reads PROGRESS states and their info while a
    celeriac task reports them;
  - a task sent by a Python client retries on a celeriac worker, the
    retries header counted across attempts;
  - a retry a celeriac worker scheduled is continued by a Python worker,
    which sees the headers it needs (retries, root id, args) intact.

Run through ctest (`ctest -R interop_retry`).
"""
import json
import os
import time
import unittest

from celery.exceptions import MaxRetriesExceededError

from harness import InteropCase, wait_until


class RetryInterop(InteropCase):

    def counter(self, name):
        return os.path.join(self.tmp, name)

    def attempts(self, path):
        with open(path) as f:
            return [tuple(int(x) for x in line.split()) for line in f if line.strip()]

    def test_max_retries_exceeded_raised_in_python(self):
        self.start_celeriac()
        path = self.counter("max")
        r = self.app.send_task("tasks.fail_times", (path, 10, 0.05))
        with self.assertRaises(MaxRetriesExceededError) as cm:
            r.get(timeout=30)
        self.assertIn("Can't retry tasks.fail_times[%s]" % r.id, str(cm.exception))
        self.assertIn("RuntimeError: failure 6 of 10", str(cm.exception))
        self.assertEqual(r.state, "FAILURE")
        self.assertIn("MaxRetriesExceededError", r.traceback)
        self.assertEqual(r.retries, 5)
        self.assertEqual([a[1] for a in self.attempts(path)], [0, 1, 2, 3, 4, 5])

    def test_progress_read_from_python(self):
        self.start_celeriac()
        r = self.app.send_task("tasks.progress", (4, 0.3))
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # One read: r.state and r.info are two reads, and the task may
            # finish between them.
            meta = r.backend.get_task_meta(r.id)
            state, info = meta["status"], meta["result"]
            if state == "SUCCESS":
                break
            if state == "PROGRESS":
                self.assertEqual(set(info), {"current", "total"})
                self.assertEqual(info["total"], 4)
                if not seen or seen[-1] != info["current"]:
                    seen.append(info["current"])
            time.sleep(0.02)
        self.assertEqual(r.get(timeout=10), 4)
        self.assertEqual(seen, sorted(seen))
        self.assertGreaterEqual(len(seen), 3, seen)
        # the stored PROGRESS meta is the one a Python worker writes
        # (celery-protocol.md 6.2); the last one is overwritten by SUCCESS
        self.assertEqual(self.meta(r.id)["status"], "SUCCESS")

    def test_python_client_task_retries_on_celeriac(self):
        self.start_celeriac()
        path = self.counter("twice")
        r = self.app.send_task("tasks.fail_times", (path, 2, 0.1))
        # RETRY is visible in between, with the error as info
        wait_until(lambda: r.state == "RETRY", 10, what="RETRY state")
        self.assertIsInstance(r.info, RuntimeError)
        self.assertEqual(r.get(timeout=30), {"attempts": 3, "retries": 2})
        self.assertEqual(r.retries, 2)
        self.assertEqual([a[1] for a in self.attempts(path)], [0, 1, 2])

    def test_celeriac_retry_continued_by_python_worker(self):
        first = self.start_celeriac(name="first")
        path = self.counter("handover")
        r = self.app.send_task("tasks.fail_times", (path, 1, 3.0))
        wait_until(lambda: r.state == "RETRY", 10, what="RETRY state")
        # The retry waits in celeriac's delayed set; the worker that made
        # it leaves, a Python worker takes the queue, and a celeriac worker
        # on another queue moves the retry back once it is due.
        first.stop()
        self.start_python()
        self.start_celeriac("-Q", "elsewhere", name="mover")
        v = r.get(timeout=30)
        self.assertEqual(v["by"], "python")
        self.assertEqual(v["retries"], 1)
        self.assertEqual(v["id"], r.id)
        self.assertEqual(v["root_id"], r.id)
        self.assertEqual(v["args"], [path, 1, 3.0])
        self.assertEqual(len(self.attempts(path)), 1)  # the C run only


if __name__ == "__main__":
    unittest.main()
