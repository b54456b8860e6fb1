"""celery.chord_unlock and saved group results between Python Celery
5.2.6 and celeriac on Redis.

chord_unlock is what a Celery client sends when its result backend has
no native chord join: here the Python client sends it by hand (the
header as plain tasks, the body as a signature) to a celeriac worker,
which polls the header, retrying itself, and sends the body once with
every result, or fails the body with Celery's ChordError.

Saved groups: a group saved with the C API (cel_result_save) is read by
Python's GroupResult.restore(), and one Python saved is restored with
cel_client_restore_group() and waited on.

Run through ctest (`ctest -R interop_chord_unlock`).
"""
import ctypes
import json
import re
import unittest
import uuid

from celery import chain, chord, group
from celery.exceptions import ChordError

from harness import InteropCase, wait_until


class ChordUnlock(InteropCase):
    def setUp(self):
        super().setUp()
        self.worker = self.start_celeriac(concurrency=2)

    def send_unlock(self, header, body, interval=0.2, max_retries=None):
        gid = str(uuid.uuid4())
        unlock = self.app.send_task(
            "celery.chord_unlock", args=(gid, dict(body)),
            kwargs={"interval": interval, "max_retries": max_retries,
                    "result": [r.as_tuple() for r in header]})
        return unlock

    def logged(self, pattern):
        return len(re.findall(pattern, self.worker.log()))

    def test_body_runs_once_with_every_result_after_a_retry(self):
        header = [self.app.send_task("tasks.add", (1, 2)),
                  self.app.send_task("tasks.sleep", (1.5,)),
                  self.app.send_task("tasks.add", (10, 20))]
        body_id = str(uuid.uuid4())
        body = self.app.signature("tasks.xsum", options={"task_id": body_id})
        unlock = self.send_unlock(header, body)
        self.assertEqual(self.app.AsyncResult(body_id).get(timeout=30), 34.5)
        # The header was not ready at first: the unlock retried itself.
        self.assertGreaterEqual(
            self.logged(r"Task celery\.chord_unlock\[%s\] retry" % unlock.id), 1)
        # Once the unlock has succeeded nothing can send the body again.
        wait_until(lambda: self.logged(r"Task celery\.chord_unlock\[%s\] succeeded"
                                       % unlock.id) == 1, 15, what="the unlock to end")
        self.assertEqual(self.logged(r"Task tasks\.xsum\[%s\] succeeded" % body_id), 1)
        # The body ran after the slowest member had finished.
        sleep_meta = self.meta(header[1].id)
        body_meta = self.meta(body_id)
        self.assertLessEqual(sleep_meta["date_done"], body_meta["date_done"])
        # As Celery's unlock task: its own result is ignored.
        self.assertIsNone(self.meta(unlock.id))

    def test_failing_member_fails_the_body_with_chord_error(self):
        header = [self.app.send_task("tasks.add", (1, 2)),
                  self.app.send_task("tasks.fail", ("boom",))]
        body_id, errback_id = str(uuid.uuid4()), str(uuid.uuid4())
        body = self.app.signature("tasks.xsum", options={"task_id": body_id})
        body.link_error(self.app.signature("tasks.echo", options={"task_id": errback_id}))
        self.send_unlock(header, body)
        with self.assertRaises(ChordError) as cm:
            self.app.AsyncResult(body_id).get(timeout=30)
        self.assertEqual(str(cm.exception),
                         "Dependency %s raised ValueError('boom')" % header[1].id)
        # The body's errback got the body's id, as chord_error_from_stack sends it.
        self.assertEqual(self.app.AsyncResult(errback_id).get(timeout=15), [body_id])
        self.assertEqual(self.logged(r"Task tasks\.xsum\[%s\]" % body_id), 0)

    def test_nested_group_member_keeps_its_shape(self):
        # Celery's unlock joins a GroupResult of the tuples: a member that
        # is a group gives a list.
        inner = self.app.GroupResult(str(uuid.uuid4()),
                                     [self.app.send_task("tasks.add", (1, 1)),
                                      self.app.send_task("tasks.sleep", (0.5,))])
        header = [inner, self.app.send_task("tasks.add", (4, 4))]
        body_id = str(uuid.uuid4())
        body = self.app.signature("tasks.echo", options={"task_id": body_id})
        self.send_unlock(header, body)
        self.assertEqual(self.app.AsyncResult(body_id).get(timeout=30), [[[2, 0.5], 8]])

    def test_max_retries_ends_the_wait(self):
        header = [self.app.send_task("tasks.sleep", (30,))]
        body_id = str(uuid.uuid4())
        body = self.app.signature("tasks.xsum", options={"task_id": body_id})
        unlock = self.send_unlock(header, body, interval=0.1, max_retries=2)
        wait_until(lambda: self.logged(r"Task celery\.chord_unlock\[%s\] raised" % unlock.id)
                   == 1, 15, what="the unlock to give up")
        self.assertIn("MaxRetriesExceededError", self.worker.log())
        self.assertEqual(self.logged(r"Task celery\.chord_unlock\[%s\] retry" % unlock.id), 2)
        self.assertIsNone(self.meta(body_id))


class SavedGroups(InteropCase):
    def setUp(self):
        super().setUp()
        self.worker = self.start_celeriac(concurrency=2)
        self.cc = self.c_client()
        L = self.cc.lib
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, res, args in [
            ("cel_sig_new", vp, [cp, cp, cp]), ("cel_sig_free", None, [vp]),
            ("cel_group", vp, [ctypes.POINTER(vp), ctypes.c_size_t]),
            ("cel_client_apply", i, [vp, vp, ctypes.POINTER(vp)]),
            ("cel_result_save", i, [vp]),
            ("cel_client_restore_group", i, [vp, cp, ctypes.POINTER(vp)]),
            ("cel_result_member_count", ctypes.c_size_t, [vp]),
            ("cel_result_member_id", cp, [vp, ctypes.c_size_t]),
        ]:
            f = getattr(L, name)
            f.restype, f.argtypes = res, args

    def test_group_saved_in_c_is_restored_by_python(self):
        L = self.cc.lib
        sigs = (ctypes.c_void_p * 3)(*[L.cel_sig_new(b"tasks.add", json.dumps([k, k]).encode(),
                                                     None) for k in range(3)])
        g = L.cel_group(sigs, 3)
        r = ctypes.c_void_p()
        self.assertEqual(L.cel_client_apply(self.cc.c, g, ctypes.byref(r)), 0)
        L.cel_sig_free(g)
        self.addCleanup(L.cel_result_free, r)
        self.assertEqual(L.cel_result_save(r), 0, L.cel_client_errmsg(self.cc.c))
        gid = L.cel_result_id(r).decode()
        ids = [L.cel_result_member_id(r, k).decode() for k in range(3)]
        restored = self.app.GroupResult.restore(gid)
        self.assertIsNotNone(restored)
        self.assertEqual([m.id for m in restored.results], ids)
        self.assertEqual(restored.get(timeout=15), [0, 2, 4])
        self.assertGreater(self.rr.ttl(f"celery-taskset-meta-{gid}"), 86000)

    def test_group_saved_by_python_is_restored_in_c(self):
        L = self.cc.lib
        res = group(self.app.signature("tasks.mul", (k, 10)) for k in range(4)).apply_async()
        res.save()
        r = ctypes.c_void_p()
        rc = L.cel_client_restore_group(self.cc.c, res.id.encode(), ctypes.byref(r))
        self.assertEqual(rc, 0, L.cel_client_errmsg(self.cc.c))
        self.addCleanup(L.cel_result_free, r)
        self.assertEqual(L.cel_result_member_count(r), 4)
        self.assertEqual([L.cel_result_member_id(r, k).decode() for k in range(4)],
                         [m.id for m in res.results])
        self.assertEqual(L.cel_result_wait(r, 15000), 0, L.cel_client_errmsg(self.cc.c))
        self.assertEqual(json.loads(L.cel_result_value_json(r)), [0, 10, 20, 30])


class ComplexHeader(InteropCase):
    """A chord whose header nests a group (a chain ending in one): Celery
    saves the header's GroupResult and the body gets [[a, b], c]. The C
    client saves the same document as Python's; celeriac workers give the
    body Celery's value whichever client sent it.

    (A Python worker running this canvas is not tested here: when it
    expands the inner group it records the chord's size again, as that
    group's alone, so Celery's own join of it completes or not depending
    on which member finishes first.)"""

    def header(self):
        s = self.app.signature
        inner = chain(s("tasks.add", (1, 1)), group(s("tasks.echo"), s("tasks.echo", (5,))))
        return group(inner, s("tasks.add", (4, 4)))

    def canvas(self):
        return chord(self.header(), self.app.signature("tasks.echo"))

    def canvas_json(self):
        # dict(chord) lists the header's tasks; the header as the group
        # signature it is reads the same in both.
        d = dict(self.canvas())
        d["kwargs"]["header"] = dict(self.header())
        return json.dumps(d)

    # Celery's answer: echo(2) = [2], echo(2, 5) = [2, 5], add = 8.
    WANT = [[[[2], [2, 5]], 8]]

    def from_python(self):
        return self.canvas().apply_async()

    def from_c(self):
        cc = self.c_client()
        L = cc.lib
        vp = ctypes.c_void_p
        for name, res, args in [
            ("cel_sig_from_json", ctypes.c_int,
             [ctypes.c_char_p, ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_size_t]),
            ("cel_sig_free", None, [vp]),
            ("cel_client_apply", ctypes.c_int, [vp, vp, ctypes.POINTER(vp)]),
        ]:
            f = getattr(L, name)
            f.restype, f.argtypes = res, args
        sig = vp()
        self.assertEqual(L.cel_sig_from_json(self.canvas_json().encode(),
                                             ctypes.byref(sig), None, 0), 0)
        r = vp()
        self.assertEqual(L.cel_client_apply(cc.c, sig, ctypes.byref(r)), 0,
                         L.cel_client_errmsg(cc.c))
        L.cel_sig_free(sig)
        body_id = L.cel_result_id(r).decode()
        L.cel_result_free(r)
        return self.app.AsyncResult(body_id)

    def check(self, sent):
        self.assertEqual(sent.get(timeout=30), self.WANT)

    def saved_shape(self, gid):
        """The saved header's shape: "T" per task, [ids-equal-gid, [...]]
        per group (parents, which only Python records, left out)."""
        raw = self.rr.get(f"celery-taskset-meta-{gid}")
        self.assertIsNotNone(raw, f"no saved header for chord {gid}")

        def shape(t):
            (tid, _parent), members = t
            return "T" if members is None else [tid == gid, [shape(m) for m in members]]
        return shape(json.loads(raw)["result"])

    def chord_gids(self):
        return [k.decode()[len("celery-taskset-meta-"):-2]
                for k in self.rr.keys("celery-taskset-meta-*.s")]

    def test_c_client_saves_the_header_python_saves(self):
        # No worker: what each client leaves in Redis before anything runs.
        self.from_python()
        (py_gid,) = self.chord_gids()
        py = self.saved_shape(py_gid)
        self.rr.flushdb()
        self.from_c()
        (c_gid,) = self.chord_gids()
        self.assertEqual(self.saved_shape(c_gid), py)
        # The outer group, and the inner group frozen with the chord's id.
        self.assertEqual(py, [True, [[True, ["T", "T"]], "T"]])
        self.assertEqual(self.rr.get(f"celery-taskset-meta-{c_gid}.s"), b"3")

    def test_python_to_celeriac(self):
        self.start_celeriac(concurrency=2)
        self.check(self.from_python())

    def test_c_client_to_celeriac(self):
        self.start_celeriac(concurrency=2)
        self.check(self.from_c())

if __name__ == "__main__":
    unittest.main()
