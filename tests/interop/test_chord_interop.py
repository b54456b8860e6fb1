"""Issue 8: a chord joined by celeriac and by Python Celery 5.2.6 at once.

Header members join the same chord from both sides: celeriac's Redis
chord_join op (through tests/interop/chord_tool.c) and Celery's own
RedisBackend.on_chord_part_return. Whichever side completes the chord
must read every entry, the other side's included, in group_index order,
and the body must fire exactly once.
"""
import json
import subprocess
import unittest
from types import SimpleNamespace
from unittest import mock

from celery.canvas import Signature

from harness import InteropCase, required_env

TTL = 86400


class ChordJoinInterop(InteropCase):
    def setUp(self):
        super().setUp()
        self.tool = required_env("CEL_TEST_CHORD_TOOL")
        self.fired = []
        patcher = mock.patch.object(Signature, "delay",
                                    lambda sig, *args, **kw: self.fired.append((sig, args)))
        patcher.start()
        self.addCleanup(patcher.stop)
        # As in a worker: Celery's join restores the GroupResult through
        # the current app.
        self.app.set_current()

    def body(self):
        return {"task": "app.tsum", "args": [], "kwargs": {},
                "options": {"task_id": "body-1"}, "subtask_type": None, "immutable": False}

    def c_size(self, gid, n):
        subprocess.run([self.tool, self.backend_url, "size", gid, str(n), str(TTL)], check=True)

    def c_join(self, gid, index, task_id, value):
        entry = json.dumps([1, task_id, "SUCCESS", value])
        cp = subprocess.run([self.tool, self.backend_url, "join", gid, str(index), entry,
                             str(TTL)], check=True, capture_output=True, text=True)
        return cp.stdout.strip()

    def py_join(self, gid, index, task_id, value):
        request = SimpleNamespace(id=task_id, group=gid, group_index=index, chord=self.body())
        self.app.backend.on_chord_part_return(request, "SUCCESS", value)

    def test_python_completes_a_chord_celeriac_joined(self):
        self.c_size("g-py", 4)
        self.assertEqual(self.c_join("g-py", 2, "t2", 20), "waiting")
        self.py_join("g-py", 1, "t1", 10)
        self.assertEqual(self.c_join("g-py", 0, "t0", 0), "waiting")
        self.assertEqual(self.fired, [])
        self.py_join("g-py", 3, "t3", 30)
        self.assertEqual(len(self.fired), 1)
        sig, args = self.fired[0]
        self.assertEqual(sig["options"]["task_id"], "body-1")
        self.assertEqual(args, ([0, 10, 20, 30],))
        # Celery cleaned up after itself; nothing is left to fire again.
        self.assertEqual(self.rr.exists("celery-taskset-meta-g-py.j",
                                        "celery-taskset-meta-g-py.s"), 0)

    def test_celeriac_completes_a_chord_python_joined(self):
        # The size as a Python client writes it (the generic set).
        self.app.backend.set_chord_size("g-c", 3)
        self.py_join("g-c", 0, "t0", "a")
        self.py_join("g-c", 2, "t2", "c")
        self.assertEqual(self.fired, [])
        out = self.c_join("g-c", 1, "t1", "b")
        self.assertTrue(out.startswith("complete "), out)
        entries = json.loads(out[len("complete "):])
        self.assertEqual([e[3] for e in entries], ["a", "b", "c"])
        self.assertEqual([e[1] for e in entries], ["t0", "t1", "t2"])
        # Consumed: a Python duplicate of a member fires nothing.
        self.py_join("g-c", 2, "t2", "c")
        self.assertEqual(self.fired, [])

    def test_same_member_from_both_sides_counts_once(self):
        self.c_size("g-dup", 2)
        self.assertEqual(self.c_join("g-dup", 0, "t0", 5), "waiting")
        self.py_join("g-dup", 0, "t0", 5)  # Python writes the same bytes
        self.assertEqual(self.fired, [])
        self.py_join("g-dup", 1, "t1", 6)
        self.assertEqual(len(self.fired), 1)
        self.assertEqual(self.fired[0][1], ([5, 6],))


if __name__ == "__main__":
    unittest.main()
