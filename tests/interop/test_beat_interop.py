"""Periodic tasks between celeriac and Python Celery 5.2 on Redis.

celeriac beat's runs are ordinary Celery messages: a Python worker runs
them and sees the entry's name in the periodic_task_name header. The
other way, Python Celery's own beat drives a celeriac worker.
"""
import json
import os
import time

from harness import PYTHON, InteropCase, Proc, wait_until

CELERY_BEAT_APP = '''
import os
from celery import Celery
app = Celery("beat_app", broker=os.environ["CEL_INTEROP_BROKER"])
app.conf.beat_schedule = {
    "adder": {"task": "tasks.add", "schedule": 1.0, "args": (2, 3)},
}
'''


class CeleriacBeatToPython(InteropCase):
    def test_python_worker_runs_celeriac_beat_entries(self):
        self.celeriac("schedule", "add", "shout", "--task", "py.only.periodic", "hi", "--every",
                      "1s", "-b", self.broker_url, check=True)
        self.start_python()
        beat = Proc("beat", [self.cli, "beat", "-b", self.broker_url, "--result-backend",
                             self.backend_url, "-l", "info"], self.tmp, env=self.env(),
                    cwd=self.tmp)
        self.procs.append(beat)

        def metas():
            out = []
            for key in self.rr.scan_iter("celery-task-meta-*"):
                m = self.meta(key.decode().rsplit("-meta-", 1)[1])
                if m and m.get("status") == "SUCCESS":
                    out.append(m)
            return out
        wait_until(lambda: len(metas()) >= 3, 20, 0.1, "three runs served by Python")
        got = metas()
        # Each run is its own task with the entry's name in its headers.
        self.assertEqual(len({m["task_id"] for m in got}), len(got))
        for m in got:
            self.assertEqual(m["result"], ["hi", "shout"])
        # The store says how many runs beat sent; Python ran no more.
        time.sleep(0.5)
        cp = self.celeriac("schedule", "show", "shout", "--json", "-b", self.broker_url,
                           check=True)
        sent = json.loads(cp.stdout)["total_runs"]
        self.assertGreaterEqual(sent, len(got))


class CeleryBeatToCeleriac(InteropCase):
    def test_celeriac_worker_runs_celery_beat_schedule(self):
        with open(os.path.join(self.tmp, "beat_app.py"), "w") as f:
            f.write(CELERY_BEAT_APP)
        w = self.start_celeriac()
        beat = Proc("celery-beat", [PYTHON, "-m", "celery", "-A", "beat_app", "beat", "-l", "info",
                                    "-s", os.path.join(self.tmp, "beat-schedule")],
                    self.tmp, env=self.env(PYTHONPATH=self.tmp), cwd=self.tmp)
        self.procs.append(beat)
        wait_until(lambda: len(self.succeeded_ids(w)) >= 3, 30, 0.1,
                   "three Celery beat runs served by celeriac")
        ids = self.succeeded_ids(w)
        self.assertEqual(len(set(ids)), len(ids))
        for m in self.wait_results(ids[:3]).values():
            self.assertEqual(m["result"], 5)
