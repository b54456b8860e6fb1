"""Interop between celeriac and Python Celery 5.2.6 / kombu 5.2.4 on Redis.

Issue 3, "What must work", one test (or more) per bullet:
  - a Python client calling tasks served by a celeriac worker: values of
    every JSON kind, failures, unknown tasks, ignore_result, priority,
    and the exact result keys the worker leaves in Redis;
  - `celeriac call` and the C client API calling tasks served by a
    Python Celery worker, plain and failing;
  - a Python and a celeriac worker sharing one queue: every task once;
  - a worker killed with SIGKILL while holding unacked tasks: the other
    implementation restores them after the visibility timeout.

Run through ctest (`ctest -L interop`), which sets CEL_TEST_CLI,
CEL_TEST_TASKS, CEL_TEST_LIB and CEL_TEST_CLIENT.
"""
import datetime as dt
import json
import re
import subprocess
import time
import unittest

from celery.exceptions import NotRegistered
from celery.exceptions import TimeoutError as CeleryTimeout

from harness import InteropCase, required_env, wait_until

SEP = "\x06\x16"
BANDS = {0: "celery", 3: "celery" + SEP + "3", 6: "celery" + SEP + "6", 9: "celery" + SEP + "9"}
META_FIELDS = {"status", "result", "traceback", "children", "date_done", "task_id"}


def band_of(priority):
    return max(s for s in BANDS if s <= priority)


class PythonClientCeleriacWorker(InteropCase):
    """app.send_task(...) from Python, served by `celeriac worker`."""

    def setUp(self):
        super().setUp()
        self.worker = self.start_celeriac()

    def call(self, name, args=(), kwargs=None, timeout=10, **opts):
        return self.app.send_task(name, args, kwargs, **opts).get(timeout=timeout)

    def test_add_positional(self):
        v = self.call("tasks.add", (2, 3))
        self.assertEqual(v, 5)
        self.assertIs(type(v), int)

    def test_kwargs(self):
        self.assertEqual(self.call("tasks.add", kwargs={"x": 2, "y": 40}), 42)
        self.assertEqual(self.call("tasks.add", (1,), {"y": 2}), 3)
        self.assertEqual(self.call("tasks.echo", (1, "a"), {"k": [True, None]}),
                         {"args": [1, "a"], "kwargs": {"k": [True, None]}})

    def test_strings(self):
        samples = ["hello", "", 'with "quotes", \\backslashes\\ and\nnew\tlines',
                   "x" * 100000, "a\u0000b"]
        for s in samples:
            with self.subTest(s=s[:20]):
                self.assertEqual(self.call("tasks.echo", (s,)), [s])

    def test_unicode(self):
        s = "héllo wörld – ✓ 日本語 \U0001F389 \u2028"
        self.assertEqual(self.call("tasks.echo", (s,), {"ключ": s}),
                         {"args": [s], "kwargs": {"ключ": s}})

    def test_nested_lists_and_dicts(self):
        v = {"a": [1, 2, {"b": None, "c": True, "d": False}], "e": {"f": {"g": [[], {}]}},
             "h": -1.5, "i": "j"}
        self.assertEqual(self.call("tasks.echo", (v, [[1, [2, [3]]]], {})),
                         [v, [[1, [2, [3]]]], {}])
        self.assertEqual(self.call("tasks.xsum", ([1, 2, 3, 4],)), 10)
        self.assertEqual(self.call("tasks.xsum", ([1, 2.5],)), 3.5)

    def test_floats(self):
        v = self.call("tasks.add", (2.0, 3))
        self.assertEqual(v, 5.0)
        self.assertIs(type(v), float)
        # Shortest round trip: the C side must not lose the last digit.
        self.assertEqual(self.call("tasks.add", (0.1, 0.2)), 0.1 + 0.2)
        self.assertEqual(self.call("tasks.mul", (1e-300, 1e-10)), 1e-310)
        self.assertEqual(self.call("tasks.echo", (-0.0, 1.7976931348623157e308, 5e-324)),
                         [-0.0, 1.7976931348623157e308, 5e-324])

    def test_big_integers(self):
        # Inside int64: exact in both directions.
        edge = [2**63 - 1, -(2**63), 2**53 + 1]
        self.assertEqual(self.call("tasks.echo", tuple(edge)), edge)
        self.assertEqual(self.call("tasks.add", (2**62, 2**62 - 1)), 2**63 - 1)
        # Overflow of the C int64 arithmetic: a clean OverflowError.
        with self.assertRaises(OverflowError):
            self.call("tasks.add", (2**62, 2**62))
        # Beyond int64 in the message itself (Python sends 2**64 as a bare
        # JSON number): the celeriac worker cannot represent it. It must
        # fail clearly -- the client gets an exception instead of waiting
        # forever -- and the worker must survive and keep serving.
        r = self.app.send_task("tasks.add", (2**64, 1))
        try:
            r.get(timeout=8)
            self.fail("tasks.add(2**64, 1) succeeded on an int64 worker")
        except CeleryTimeout:
            self.fail("tasks.add(2**64, 1): no result stored, the client waits forever "
                      "(the worker dropped the message without telling the client)\n"
                      + self.worker.tail(10))
        except Exception as e:
            # What celeriac does: FAILURE kombu.exceptions.DecodeError naming
            # the number, stored under the message's id (from the headers).
            self.assertEqual(type(e).__name__, "DecodeError", repr(e))
            self.assertIn("18446744073709551616", str(e))
        self.assertTrue(self.worker.alive())
        self.assertEqual(self.call("tasks.add", (2, 3)), 5)

    def test_failing_task(self):
        r = self.app.send_task("tasks.fail", ("bad thing happened",))
        with self.assertRaises(ValueError) as cm:
            r.get(timeout=10)
        self.assertEqual(cm.exception.args, ("bad thing happened",))
        self.assertEqual(r.state, "FAILURE")
        self.assertIsInstance(r.traceback, str)
        self.assertIn("ValueError", r.traceback)
        meta = self.meta(r.id)
        self.assertEqual(meta["result"], {"exc_type": "ValueError",
                                          "exc_message": ["bad thing happened"],
                                          "exc_module": "builtins"})
        # The default message and a keyword argument.
        with self.assertRaisesRegex(ValueError, "^boom$"):
            self.call("tasks.fail")
        with self.assertRaisesRegex(ValueError, "^by kw$"):
            self.call("tasks.fail", kwargs={"message": "by kw"})
        self.assertTrue(self.worker.alive())

    def test_time_limit_from_python(self):
        # Issue 7: apply_async(time_limit=1) sends timelimit [1, null]; the
        # celeriac child announces it in its BEGIN frame, the parent kills
        # the busy loop at 1 s and stores Celery's TimeLimitExceeded, which
        # a Python client raises as billiard's own exception.
        from billiard.exceptions import TimeLimitExceeded
        started = time.monotonic()
        r = self.app.send_task("tasks.spin", (30,), time_limit=1)
        with self.assertRaises(TimeLimitExceeded) as cm:
            r.get(timeout=15)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(cm.exception.args, (1.0,))
        self.assertEqual(r.state, "FAILURE")
        self.assertEqual(self.meta(r.id)["result"], {"exc_type": "TimeLimitExceeded",
                                                     "exc_message": [1.0],
                                                     "exc_module": "billiard.exceptions"})
        self.worker.wait_log(r"Hard time limit \(1s\) exceeded for tasks\.spin\[" + r.id)
        # The next task runs on a fresh child.
        self.assertEqual(self.call("tasks.add", (2, 3)), 5)
        self.assertTrue(self.worker.alive())

    def test_unknown_task(self):
        r = self.app.send_task("tasks.does_not_exist", (1,))
        with self.assertRaises(NotRegistered):
            r.get(timeout=10)
        self.worker.wait_log(r"unregistered task of type 'tasks\.does_not_exist'", 5)
        self.assertTrue(self.worker.alive())
        self.assertEqual(self.call("tasks.add", (20, 22)), 42)
        # Not left in the broker's unacked records (nor restored later).
        wait_until(lambda: self.rb.hlen("unacked") == 0, 5, what="unacked to drain")
        self.assertEqual(self.rb.llen("celery"), 0)

    def test_ignore_result(self):
        ignored = self.app.send_task("tasks.add", (1, 2), ignore_result=True)
        kept = self.app.send_task("tasks.add", (3, 4))
        self.assertEqual(kept.get(timeout=10), 7)
        self.worker.wait_log(r"tasks\.add\[%s\] succeeded" % ignored.id, 5)
        time.sleep(0.2)  # a late write would land now
        self.assertIsNone(self.rr.get(f"celery-task-meta-{ignored.id}"))
        self.assertEqual(self.rr.keys("celery-task-meta-*"),
                         [f"celery-task-meta-{kept.id}".encode()])
        # The same through `celeriac call --ignore-result`.
        cp = self.celeriac("call", "tasks.add", "5", "6", "--ignore-result", "-b",
                           self.broker_url, "--result-backend", self.backend_url, check=True)
        tid = cp.stdout.strip().splitlines()[-1]
        self.worker.wait_log(r"tasks\.add\[%s\] succeeded" % re.escape(tid), 5)
        time.sleep(0.2)
        self.assertIsNone(self.rr.get(f"celery-task-meta-{tid}"))
        # A task that runs long enough for its STARTED state leaves nothing
        # either: no STARTED that no outcome would ever replace.
        slow = self.app.send_task("tasks.sleep", (0.3,), ignore_result=True)
        self.worker.wait_log(r"tasks\.sleep\[%s\] succeeded" % slow.id, 10)
        time.sleep(0.2)
        self.assertIsNone(self.rr.get(f"celery-task-meta-{slow.id}"))

    def test_result_keys(self):
        """The exact keys a stored result leaves, and the PUBLISH a Python
        client waits on."""
        r_sub = self.redis.client(self.RESULT_DB)
        self.addCleanup(r_sub.close)
        ps = r_sub.pubsub()
        self.addCleanup(ps.close)
        task_id = "0f6f4c8e-1234-4c1a-9d55-8d3c2f1a0b7e"
        ps.subscribe(f"celery-task-meta-{task_id}")
        ps.get_message(timeout=1)  # the subscribe confirmation
        before = time.time()
        self.assertEqual(self.app.send_task("tasks.add", (2, 3), task_id=task_id)
                         .get(timeout=10), 5)
        key = f"celery-task-meta-{task_id}"
        self.assertEqual(self.rr.type(key), b"string")
        ttl = self.rr.ttl(key)
        self.assertTrue(86390 <= ttl <= 86400, f"TTL {ttl}, want result_expires=86400")
        raw = self.rr.get(key)
        meta = json.loads(raw)
        self.assertEqual(set(meta), META_FIELDS)
        self.assertEqual(list(meta)[-1], "task_id")  # Celery writes it last
        self.assertEqual(meta["status"], "SUCCESS")
        self.assertEqual(meta["result"], 5)
        self.assertIsNone(meta["traceback"])
        self.assertEqual(meta["children"], [])
        self.assertEqual(meta["task_id"], task_id)
        # Celery 5.2: naive UTC isoformat, microseconds.
        self.assertRegex(meta["date_done"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$")
        done = dt.datetime.fromisoformat(meta["date_done"]).replace(tzinfo=dt.timezone.utc)
        self.assertLess(abs(done.timestamp() - before), 10, "date_done is not UTC now")
        # The same document was published on the channel of the same name
        # (after a STARTED one: celeriac defaults task_track_started to true).
        published = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (published and
                                                    published[-1]["status"] == "SUCCESS"):
            msg = ps.get_message(timeout=0.5)
            if msg and msg["type"] == "message":
                self.assertEqual(msg["channel"], key.encode())
                published.append(json.loads(msg["data"]))
        self.assertTrue(published, "no PUBLISH on celery-task-meta-<id>")
        self.assertEqual(published[-1], meta)
        for m in published[:-1]:
            self.assertEqual(m["status"], "STARTED")
            self.assertEqual(set(m["result"]), {"pid", "hostname"})
            self.assertIsNone(m["date_done"])
        # Nothing else in the result db; the broker db holds no leftovers.
        self.assertEqual(self.rr.keys("*"), [key.encode()])
        wait_until(lambda: self.rb.hlen("unacked") == 0, 5, what="the ack")
        self.assertEqual(self.rb.zcard("unacked_index"), 0)
        for band in BANDS.values():
            self.assertEqual(self.rb.llen(band), 0, band)
        # The worker declared its queue like kombu does (spec section 10).
        self.assertIn(("celery" + SEP + SEP + "celery").encode(),
                      self.rb.smembers("_kombu.binding.celery"))
        # A SUCCESS is never overwritten: a duplicate delivery of the same
        # id that fails must leave the stored SUCCESS alone.
        dup = self.app.send_task("tasks.fail", ("dup",), task_id=task_id)
        self.worker.wait_log(r"tasks\.fail\[%s\] raised" % task_id, 10)
        time.sleep(0.2)
        self.assertEqual(json.loads(self.rr.get(key))["status"], "SUCCESS")
        self.assertEqual(dup.id, task_id)


class Priority(InteropCase):
    def test_priority_bands(self):
        """Messages land in kombu's band lists (nothing running), then a
        celeriac worker serves band 0 first."""
        sent = {}  # task id -> priority
        for p in (9, 6, 5, 3, 1, 0, 9, 0):
            r = self.app.send_task("tasks.noop", priority=p)
            sent[r.id] = p
        # The C side must use the same bands: `celeriac call` and the API.
        for p in (9, 4, 0):
            cp = self.celeriac("call", "tasks.noop", "--priority", str(p), "-b",
                               self.broker_url, "--result-backend", self.backend_url,
                               check=True)
            sent[cp.stdout.strip().splitlines()[-1]] = p
        c = self.c_client()
        for p in (7, 2):
            sent[c.call("tasks.noop", priority=p, wait=False)["id"]] = p

        for step, key in BANDS.items():
            want = sorted(i for i, p in sent.items() if band_of(p) == step)
            got = []
            for raw in self.rb.lrange(key, 0, -1):
                env = json.loads(raw)
                tid = env["headers"]["id"]
                got.append(tid)
                # properties.priority keeps the raw value, not the band.
                self.assertEqual(env["properties"]["priority"], sent[tid])
                self.assertEqual(env["properties"]["delivery_info"]["routing_key"], "celery")
            self.assertEqual(sorted(got), want, f"band {step} ({key!r})")
        self.assertEqual(self.rb.hlen("unacked"), 0)

        # One at a time (solo, prefetch 1) so the serving order is visible
        # in date_done: every band-0 task before any band-3 task, etc.
        self.start_celeriac("-P", "solo", "--prefetch-multiplier", "1", concurrency=1)
        metas = self.wait_results(list(sent), 20)
        self.assertTrue(all(m["status"] == "SUCCESS" for m in metas.values()))
        done = {i: dt.datetime.fromisoformat(m["date_done"]) for i, m in metas.items()}
        steps = sorted(BANDS)
        for lo, hi in zip(steps, steps[1:]):
            last_lo = max(done[i] for i, p in sent.items() if band_of(p) == lo)
            first_hi = min(done[i] for i, p in sent.items() if band_of(p) == hi)
            self.assertLess(last_lo, first_hi, f"band {hi} served before band {lo} finished")


class CeleriacClientPythonWorker(InteropCase):
    """`celeriac call` and the C client API, served by a Python worker."""

    def setUp(self):
        super().setUp()
        self.worker = self.start_python(pool="solo", concurrency=1)

    def call(self, *args, check=True):
        wait = ("--timeout", "10") if "--wait" in args else ()
        return self.celeriac("call", *args, "-b", self.broker_url, "--result-backend",
                             self.backend_url, *wait, check=check)

    def test_cli_call(self):
        cp = self.call("tasks.add", "2", "3", "--wait")
        self.assertEqual(cp.stdout.strip(), "5")
        cp = self.call("tasks.add", "--kw", "x=2.0", "--kw", "y=3", "--wait")
        self.assertEqual(json.loads(cp.stdout), 5.0)
        self.assertIn(".", cp.stdout, "5.0 came back as an integer")
        cp = self.call("tasks.echo", "-a", '["héllo ✓ \\ud83c\\udf89", {"n": [1, null]}]',
                       "--wait")
        self.assertEqual(json.loads(cp.stdout), ["héllo ✓ \U0001F389", {"n": [1, None]}])
        # A task only Python has.
        cp = self.call("py.only.upper", "straße", "--wait")
        self.assertEqual(json.loads(cp.stdout), "STRASSE")
        # The Python worker ran them, and `celeriac result` reads its meta.
        tid = self.call("tasks.mul", "6", "7").stdout.strip().splitlines()[-1]
        self.worker.wait_log(r"tasks\.mul\[%s\] succeeded" % tid, 10)
        cp = self.celeriac("result", tid, "--json", "-b", self.broker_url, "--result-backend",
                           self.backend_url)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        meta = json.loads(cp.stdout)
        self.assertEqual((meta["status"], meta["result"], meta["task_id"]), ("SUCCESS", 42, tid))
        self.assertEqual(len(self.succeeded_ids(self.worker)), 5)

    def test_cli_call_failure(self):
        cp = self.call("tasks.fail", "it broke", "--wait", check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        out = cp.stdout + cp.stderr
        self.assertIn("ValueError", out)
        self.assertIn("it broke", out)
        cp = self.call("tasks.nope", "--wait", check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("NotRegistered", cp.stdout + cp.stderr)

    def test_c_client_api(self):
        # The example program, unchanged, configured by CELERIAC_* only.
        client = required_env("CEL_TEST_CLIENT")
        cp = subprocess.run([client], capture_output=True, text=True, timeout=30,
                            env=self.env(CELERIAC_BROKER_URL=self.broker_url,
                                         CELERIAC_RESULT_BACKEND=self.backend_url))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout.strip(), "tasks.add(2, 3) = 5")
        # The library API, call by call.
        c = self.c_client()
        r = c.call("tasks.add", "[2, 3]")
        self.assertEqual((r["state"], r["value"]), ("SUCCESS", 5))
        r = c.call("tasks.echo", '["x"]', '{"k": {"nested": [1.5]}}')
        self.assertEqual(r["value"], {"args": ["x"], "kwargs": {"k": {"nested": [1.5]}}})
        r = c.call("py.only.pid")
        self.assertEqual(r["state"], "SUCCESS")
        self.assertIsInstance(r["value"], int)
        r = c.call("tasks.fail", '["kaput"]')
        self.assertEqual(r["state"], "FAILURE")
        self.assertEqual(r["exc_type"], "ValueError")
        self.assertEqual(r["exc_message"], "kaput")
        self.assertIn("ValueError: kaput", r["traceback"] or "")
        self.assertIn(r["id"], self.worker.log())


class SharedQueue(InteropCase):
    N = 200

    def test_both_workers_share_one_queue(self):
        py = self.start_python(pool="prefork", concurrency=2)
        cw = self.start_celeriac(concurrency=2)
        ids = {}
        for i in range(self.N):
            ids[self.app.send_task("tasks.echo", (i, "x" * (i % 7))).id] = i
        metas = self.wait_results(list(ids), 60)
        for tid, i in ids.items():
            self.assertEqual(metas[tid]["status"], "SUCCESS", tid)
            self.assertEqual(metas[tid]["result"], [i, "x" * (i % 7)], tid)
        # Every task ran exactly once, counted from both logs.
        wait_until(lambda: len(self.succeeded_ids(py)) + len(self.succeeded_ids(cw)) >= self.N,
                   10, what="both logs to list every task")
        ran = self.succeeded_ids(py) + self.succeeded_ids(cw)
        self.assertEqual(sorted(ran), sorted(ids), "a task ran twice or not at all")
        n_py, n_c = len(self.succeeded_ids(py)), len(self.succeeded_ids(cw))
        self.assertGreater(n_py, 0, "the Python worker ran nothing")
        self.assertGreater(n_c, 0, "the celeriac worker ran nothing")
        self.assertEqual(self.rb.hlen("unacked"), 0)
        print(f"\n  shared queue: python ran {n_py}, celeriac ran {n_c}", flush=True)


class Recovery(InteropCase):
    """SIGKILL a worker holding unacked messages; the other implementation
    restores them once the visibility timeout has passed."""

    VT = 3
    SLEEP = 2.0
    N = 6

    def send_sleeps(self):
        return [self.app.send_task("tasks.sleep", (self.SLEEP,)).id for _ in range(self.N)]

    def held(self, ids):
        """Ids in `unacked` right after the kill: at least the 3 reserved
        behind the running one (which may just have finished)."""
        held = [json.loads(v)[0]["headers"]["id"] for v in self.rb.hvals("unacked")]
        self.assertGreaterEqual(len(held), 3)
        self.assertLessEqual(set(held), set(ids))
        self.assertEqual(self.rb.llen("celery"), self.N - 4)
        return held

    def assert_restored_and_run(self, ids, held, survivor):
        metas = self.wait_results(ids, 40)
        for tid in ids:
            self.assertEqual(metas[tid]["status"], "SUCCESS", tid)
            self.assertEqual(metas[tid]["result"], self.SLEEP)
        got = self.succeeded_ids(survivor)
        for tid in held:
            self.assertIn(tid, got, f"held message {tid} was not run by the survivor")
        wait_until(lambda: self.rb.hlen("unacked") == 0 and self.rb.zcard("unacked_index") == 0,
                   10, what="unacked to drain")
        self.assertEqual(self.rb.llen("celery"), 0)

    def test_celeriac_killed_python_restores(self):
        cw = self.start_celeriac("--prefetch-multiplier", "4", concurrency=1, vt=self.VT)
        ids = self.send_sleeps()
        # The worker holds 4 (1 running + 3 reserved), 2 wait in the list.
        wait_until(lambda: self.rb.hlen("unacked") == 4, 10, what="celeriac to reserve 4")
        cw.kill()
        held = self.held(ids)
        self.assertEqual(self.rb.zcard("unacked_index"), len(held))
        # The unacked record is kombu's: [envelope, exchange, routing_key].
        for tag, v in self.rb.hgetall("unacked").items():
            env, exchange, rkey = json.loads(v)
            self.assertEqual(env["properties"]["delivery_tag"], tag.decode())
            self.assertEqual((exchange, rkey), ("", "celery"))
        time.sleep(self.VT + 0.5)
        py = self.start_python(pool="prefork", concurrency=2, vt=self.VT)
        self.assert_restored_and_run(ids, held, py)

    def test_python_killed_celeriac_restores(self):
        py = self.start_python(pool="prefork", concurrency=1, vt=self.VT, prefetch=4)
        ids = self.send_sleeps()
        # tasks.sleep is acks_late in celery_app: the running one stays
        # unacked too, so the worker holds 4 (prefetch 1 x 4).
        wait_until(lambda: self.rb.hlen("unacked") == 4, 10, what="python to reserve 4")
        py.kill()
        held = self.held(ids)
        time.sleep(self.VT + 0.5)
        cw = self.start_celeriac(concurrency=2, vt=self.VT)
        self.assert_restored_and_run(ids, held, cw)
        self.assertTrue(cw.alive())


if __name__ == "__main__":
    unittest.main()
