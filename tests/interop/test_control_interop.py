"""Our CLI against Python Celery 5.2.6 workers on Redis (remote control):
  - `celeriac inspect ping` gets a Python worker's pong;
  - `celeriac inspect active` shows the task a Python worker is running;
  - `celeriac status` counts a celeriac and a Python worker together;
  - `celeriac control rate_limit` gets the Python worker's reply.

Run through ctest (`ctest -R interop_control`).
"""
import json
import socket
import unittest
import uuid

from harness import InteropCase, wait_until


class ControlInterop(InteropCase):

    def py_node(self, name="py"):
        return f"{name}@{socket.gethostname()}"

    def cli_json(self, *args):
        cp = self.celeriac(*args, "--json", "-b", self.broker_url, check=True)
        return json.loads(cp.stdout)

    def test_inspect_ping_python_worker(self):
        self.start_python(concurrency=1)
        node = self.py_node()
        replies = self.cli_json("inspect", "ping", "-d", node, "-t", "5")
        self.assertEqual(replies, {node: {"ok": "pong"}})
        cp = self.celeriac("inspect", "ping", "-b", self.broker_url, "-t", "2", check=True)
        self.assertIn(f"->  {node}: OK", cp.stdout)
        self.assertIn("pong", cp.stdout)

    def test_inspect_active_shows_python_task(self):
        self.start_python(concurrency=1)
        node = self.py_node()
        task_id = str(uuid.uuid4())
        self.app.send_task("tasks.sleep", args=[8], task_id=task_id)
        seen = {}

        def running():
            replies = self.cli_json("inspect", "active", "-d", node, "-t", "5")
            for req in replies.get(node, []):
                if req.get("id") == task_id:
                    seen.update(req)
            return bool(seen)
        wait_until(running, 20, 0.1, "the Python worker's active task")
        self.assertEqual(seen["name"], "tasks.sleep")
        self.assertEqual(seen["args"], [8])
        self.assertIsNotNone(seen["time_start"])
        cp = self.celeriac("inspect", "active", "-d", node, "-b", self.broker_url, "-t", "5",
                           check=True)
        self.assertIn(f"tasks.sleep[{task_id}]", cp.stdout)
        self.assertIn("running", cp.stdout)

    def test_status_counts_celeriac_and_python(self):
        self.start_celeriac(concurrency=1, name="cw")
        self.start_python(concurrency=1)
        cp = self.celeriac("status", "-b", self.broker_url, "-t", "3", check=True)
        self.assertIn("->  cw@interop: OK", cp.stdout)
        self.assertIn(f"->  {self.py_node()}: OK", cp.stdout)
        self.assertIn("2 nodes online.", cp.stdout)

    def test_control_rate_limit_python_worker(self):
        self.start_python(concurrency=1)
        node = self.py_node()
        replies = self.cli_json("control", "rate_limit", "tasks.add", "10/m", "-d", node)
        self.assertEqual(replies, {node: {"ok": "new rate limit set successfully"}})


if __name__ == "__main__":
    unittest.main()
