"""Delayed and expiring tasks between celeriac and Python Celery 5.2 on
Redis (issue 7, "Delayed tasks in mixed deployments").

A countdown sent by celeriac's client used to wait in celeriac.delayed,
which only a celeriac worker moves: a Python worker never ran it. It now
travels as Celery's eta header on the queue itself. The other way,
countdown, eta, expires and time limits sent by Python reach a celeriac
worker, which parks early tasks broker-side and revokes expired ones.
"""
import datetime as dt
import time
import unittest

from celery.exceptions import TaskRevokedError

from harness import InteropCase, wait_until


class CeleriacClientToPython(InteropCase):
    def call(self, *args, check=True):
        return self.celeriac("call", *args, "-b", self.broker_url, "--result-backend",
                             self.backend_url, check=check)

    def test_cli_countdown_served_by_python(self):
        self.start_python()
        t0 = time.time()
        cp = self.call("py.only.upper", "abc", "--countdown", "2", "--wait", "--timeout", "20")
        took = time.time() - t0
        self.assertEqual(cp.stdout.strip(), '"ABC"')
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 10.0)
        # Nothing went to the delayed set only a celeriac worker moves.
        self.assertEqual(self.rb.zcard("celeriac.delayed"), 0)

    def test_cli_expires_honoured_by_python(self):
        self.start_python()
        cp = self.call("py.only.upper", "abc", "--countdown", "2", "--expires", "1", "--wait",
                       "--timeout", "20", check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("TaskRevokedError", cp.stderr)


class PythonClientToCeleriac(InteropCase):
    def test_countdown_eta_expires_time_limit(self):
        w = self.start_celeriac()
        t0 = time.time()
        r = self.app.send_task("tasks.add", (1, 2), countdown=2)
        self.assertEqual(r.get(timeout=20), 3)
        self.assertGreaterEqual(time.time() - t0, 2.0)
        w.wait_log(r"parked on the broker until it is due", 5)

        eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
        t0 = time.time()
        r = self.app.send_task("tasks.add", (2, 2), eta=eta)
        self.assertEqual(r.get(timeout=20), 4)
        self.assertGreaterEqual(time.time() - t0, 1.4)

        r = self.app.send_task("tasks.add", (3, 3), countdown=2, expires=1)
        with self.assertRaises(TaskRevokedError):
            r.get(timeout=20)
        self.assertEqual(r.state, "REVOKED")
        w.wait_log(r"Discarding revoked task: tasks\.add\[%s\] \(expired\)" % r.id, 5)

        # Parked tasks left no trace behind them.
        wait_until(lambda: self.rb.zcard("celeriac.delayed") == 0, 5, what="delayed set empty")
        # The ack follows the stored state, so it may land just after the
        # client saw REVOKED.
        wait_until(lambda: self.rb.hlen("unacked") == 0, 5, what="nothing left unacked")

    def test_time_limit_accepted(self):
        # A limit that differs from the worker's makes the prefork child
        # announce it to the parent (BEGIN frame) before the task runs.
        self.start_celeriac()
        r = self.app.send_task("tasks.add", (4, 4), time_limit=30, soft_time_limit=20)
        self.assertEqual(r.get(timeout=20), 8)


if __name__ == "__main__":
    unittest.main()
