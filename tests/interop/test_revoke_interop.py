"""Revokes between celeriac and Python Celery 5.2.6 on Redis (issue 7,
"Revoke"):
  - app.control.revoke(id) from Python for a task queued to a celeriac
    worker: it never runs and ends REVOKED;
  - app.control.revoke(id, terminate=True) of a task a celeriac worker is
    running: its child is killed, the task ends REVOKED (terminated), and
    the worker serves the next task on a new child;
  - `celeriac revoke` honoured by a Python worker (the pidbox broadcast).

Run through ctest (`ctest -R interop_revoke`).
"""
import unittest
import uuid

from harness import InteropCase, wait_until


class RevokeInterop(InteropCase):

    def result_of(self, task_id, timeout=30):
        return self.wait_results([task_id], timeout)[task_id]

    def assert_revoked(self, meta, reason):
        self.assertEqual(meta["status"], "REVOKED")
        self.assertEqual(meta["result"]["exc_type"], "TaskRevokedError")
        self.assertEqual(meta["result"]["exc_module"], "celery.exceptions")
        self.assertEqual(meta["result"]["exc_message"], [reason])

    def test_python_revoke_of_a_queued_task(self):
        w = self.start_celeriac(concurrency=1)
        # The only child is busy, so the next task waits in the worker.
        busy = self.app.send_task("tasks.sleep", args=[3])
        victim = str(uuid.uuid4())
        self.app.send_task("tasks.add", args=[2, 3], task_id=victim)
        w.wait_log(r"Task tasks\.add\[" + victim + r"\] received", 15)
        self.app.control.revoke(victim)
        self.assert_revoked(self.result_of(victim), "revoked")
        self.assertIn(f"Discarding revoked task: tasks.add[{victim}]", w.log())
        self.assertNotIn(f"tasks.add[{victim}] succeeded", w.log())
        self.assertEqual(busy.get(timeout=30), 3)
        # Python's client sees Celery's own exception type.
        self.assertEqual(self.app.AsyncResult(victim).state, "REVOKED")

    def test_python_revoke_terminate_of_a_running_task(self):
        w = self.start_celeriac(concurrency=1)
        victim = str(uuid.uuid4())
        self.app.send_task("tasks.sleep", args=[60], task_id=victim)
        wait_until(lambda: (self.meta(victim) or {}).get("status") == "STARTED", 15,
                   what="the task to start")
        self.app.control.revoke(victim, terminate=True)
        self.assert_revoked(self.result_of(victim, timeout=10), "terminated")
        self.assertIn(f"Terminating {victim} (SIGTERM)", w.log())
        self.assertNotIn("WorkerLostError", w.log())
        # A new child serves the next task.
        self.assertEqual(self.app.send_task("tasks.add", args=[1, 2]).get(timeout=30), 3)

    def test_celeriac_revoke_honoured_by_python_worker(self):
        py = self.start_python(concurrency=1)
        victim = str(uuid.uuid4())
        self.celeriac("revoke", victim, "-b", self.broker_url, check=True)
        py.wait_log(r"Tasks flagged as revoked: " + victim, 15)
        self.app.send_task("tasks.add", args=[2, 3], task_id=victim)
        self.assertEqual(self.result_of(victim)["status"], "REVOKED")
        self.assertIn(f"Discarding revoked task: tasks.add[{victim}]", py.log())
        # Stored on the broker side too: a celeriac worker started now skips it.
        self.assertIsNotNone(self.rb.zscore("celeriac.revoked", victim))


if __name__ == "__main__":
    unittest.main()
