"""Process plumbing for the Redis interop suite.

Every test gets its own throw-away redis-server on a free loopback port
(no persistence), its own temp dir for logs, and whatever workers it
starts; all of it is torn down by unittest cleanups, which run even when
the test fails. On failure the tail of every log is printed, so a CI log
says what the workers saw.

Paths come from the environment (set by tests/interop/CMakeLists.txt):
  CEL_TEST_CLI    the celeriac executable
  CEL_TEST_TASKS  the example task module (libtasks.so)
  CEL_TEST_LIB    libceleriac.so, for the C client API through ctypes
Set CEL_INTEROP_KEEP=1 to keep the temp dirs.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's: the one that sees python3-celery

try:
    import redis
except ImportError as e:  # CI installs python3-redis: its absence is a failure
    raise RuntimeError(f"interop suite needs python3-redis for {PYTHON}: {e}") from e
try:
    import celery  # noqa: F401
except ImportError as e:
    raise RuntimeError(f"interop suite needs python3-celery for {PYTHON}: {e}") from e

REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    raise RuntimeError("interop suite needs redis-server on PATH (apt-get install redis-server)")


def required_env(name):
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(f"{name} is not set: run the suite through ctest (label interop)")
    if not os.path.exists(v):
        raise RuntimeError(f"{name}={v} does not exist: build the project first")
    return v


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A child in its own session (so its whole tree can be signalled),
    with stdout and stderr going to one log file."""

    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.logpath = os.path.join(logdir, f"{name}.log")
        self._log = open(self.logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=15):
        """Waits for a regex in the log; fails early if the process died."""
        rx = re.compile(pattern)

        def seen():
            if rx.search(self.log()):
                return True
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.p.returncode}) before logging "
                                     f"{pattern!r}:\n{self.tail()}")
            return False
        wait_until(seen, timeout, 0.05, f"{self.name} to log {pattern!r}")

    def tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def _signal_group(self, sig):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL to the whole process group: a crash, nothing cleans up."""
        self._signal_group(signal.SIGKILL)
        self.p.wait(10)

    def stop(self, timeout=15):
        """SIGTERM (warm shutdown), then SIGKILL to the group if it lingers."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.p.wait(10)
        # Children that outlived their parent (a prefork pool after a crash).
        self._signal_group(signal.SIGKILL)
        self._log.close()
        return self.p.returncode


class RedisServer:
    def __init__(self, logdir):
        self.port = free_port()
        self.proc = Proc("redis", [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", logdir,
                                   "--databases", "4"], logdir)
        r = self.client(0)
        try:
            wait_until(lambda: self._ping(r), 10, what=f"redis-server on port {self.port}")
        except BaseException:
            self.proc.kill()
            raise
        finally:
            r.close()

    @staticmethod
    def _ping(r):
        try:
            return r.ping()
        except redis.ConnectionError:
            return False

    def url(self, db):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def stop(self):
        try:
            self.client(0).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us
        self.proc.stop(5)


class InteropCase(unittest.TestCase):
    """Base class: a fresh Redis per test; broker db 0, result db 1."""

    BROKER_DB = 0
    RESULT_DB = 1

    @classmethod
    def setUpClass(cls):
        cls.cli = required_env("CEL_TEST_CLI")
        cls.tasks_so = required_env("CEL_TEST_TASKS")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cel-interop-")
        if os.environ.get("CEL_INTEROP_KEEP") != "1":
            self.addCleanup(shutil.rmtree, self.tmp, True)
        # Cleanups run last-in first-out: workers stop (warm shutdown needs
        # Redis), then Redis, then the temp dir goes.
        self.redis = RedisServer(self.tmp)
        self.addCleanup(self.redis.stop)
        self.procs = []
        self.addCleanup(self._stop_all)
        self.broker_url = self.redis.url(self.BROKER_DB)
        self.backend_url = self.redis.url(self.RESULT_DB)
        self.rb = self.redis.client(self.BROKER_DB)
        self.rr = self.redis.client(self.RESULT_DB)
        self.addCleanup(self.rb.close)
        self.addCleanup(self.rr.close)
        self._app = None

    def _stop_all(self):
        failed = self._failed()
        for p in reversed(self.procs):
            p.stop()
        # A sanitizer build (CEL_SANITIZE) reports into the worker's log,
        # leaks only at exit: make them fail the test.
        sanitizer = [p.name for p in self.procs
                     if re.search(r"Sanitizer|runtime error:", p.log())]
        failed = failed or bool(sanitizer)
        if failed:
            for p in self.procs:
                sys.stderr.write(f"\n----- {p.name} log (tail) -----\n{p.tail()}\n")
            sys.stderr.write(f"----- logs kept in {self.tmp} -----\n"
                             if os.environ.get("CEL_INTEROP_KEEP") == "1" else "")
        if sanitizer:
            raise AssertionError(f"sanitizer report in the log of {', '.join(sanitizer)}")

    def _failed(self):
        # Python 3.11 records failures on the result as they happen.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in list(result.failures) + list(result.errors))

    # ---- clients -------------------------------------------------------

    def env(self, **extra):
        e = dict(os.environ)
        e.update(PYTHONDONTWRITEBYTECODE="1", CEL_INTEROP_BROKER=self.broker_url,
                 CEL_INTEROP_BACKEND=self.backend_url)
        e["PYTHONPATH"] = HERE + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
        for k in [k for k in e if k.startswith("CELERIAC_")]:
            del e[k]  # the tests say explicitly what they want
        e.update({k: str(v) for k, v in extra.items()})
        return e

    @property
    def app(self):
        """A Python Celery client app on this test's Redis."""
        if self._app is None:
            import celery_app
            self._app = celery_app.make_app(self.broker_url, self.backend_url)
            self.addCleanup(self._close_app)
        return self._app

    def _close_app(self):
        # AsyncResult.__del__ unsubscribes; with the pub/sub gone it has
        # nothing to do, instead of retrying a vanished Redis for 20 s.
        rc = self._app.backend.result_consumer
        rc.stop()
        rc._pubsub = None
        self._app.close()

    def celeriac(self, *args, timeout=60, check=False):
        """Runs the celeriac CLI; returns the CompletedProcess (text)."""
        cp = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=timeout,
                            env=self.env(), cwd=self.tmp)
        if check and cp.returncode != 0:
            raise AssertionError(f"celeriac {' '.join(args)} exited {cp.returncode}:\n"
                                 f"{cp.stdout}\n{cp.stderr}")
        return cp

    def c_client(self):
        """The C client API (libceleriac.so through ctypes) on this Redis."""
        c = CClient(required_env("CEL_TEST_LIB"), self.broker_url, self.backend_url)
        self.addCleanup(c.close)
        return c

    # ---- workers -------------------------------------------------------

    def start_celeriac(self, *extra, name="celeriac", concurrency=2, vt=None, wait=True):
        argv = [self.cli, "worker", "-A", self.tasks_so, "-b", self.broker_url,
                "--result-backend", self.backend_url, "-c", str(concurrency), "-l", "info",
                "-n", f"{name}@interop"]
        if vt is not None:
            argv += ["--set", f"broker_visibility_timeout={vt}"]
        argv += list(extra)
        p = Proc(name, argv, self.tmp, env=self.env(), cwd=self.tmp)
        self.procs.append(p)
        if wait:
            p.wait_log(r"ready\.", 15)
        return p

    def start_python(self, pool="prefork", concurrency=2, name="py", vt=None, prefetch=None,
                     wait=True):
        argv = [PYTHON, "-m", "celery", "-A", "celery_app", "worker", "-P", pool,
                "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-l", "info"]
        extra = {}
        if vt is not None:
            extra["CEL_INTEROP_VT"] = vt
        if prefetch is not None:
            extra["CEL_INTEROP_PREFETCH"] = prefetch
        p = Proc(name, argv, self.tmp, env=self.env(**extra), cwd=HERE)
        self.procs.append(p)
        if wait:
            p.wait_log(r" ready\.", 30)
        return p

    # ---- Redis helpers ---------------------------------------------------

    def meta(self, task_id):
        raw = self.rr.get(f"celery-task-meta-{task_id}")
        return None if raw is None else json.loads(raw)

    def wait_results(self, ids, timeout=30):
        """Waits until every id has a ready meta; returns {id: meta}."""
        out = {}

        def done():
            for i in ids:
                if i not in out:
                    m = self.meta(i)
                    if m and m.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                        out[i] = m
            return len(out) == len(ids)
        wait_until(done, timeout, 0.05, f"{len(ids)} results ({len(out)} so far)")
        return out

    def succeeded_ids(self, proc):
        """Task ids a worker logged as succeeded (Celery's log format,
        which the celeriac worker reuses)."""
        return re.findall(r"Task [\w.]+\[([0-9a-f-]{36})\] succeeded", proc.log())


class CClient:
    """The C client API of libceleriac, called through ctypes: what a C
    program linking the library does, without a compiler in the loop."""

    class SendOptions(ctypes.Structure):
        """cel_send_options (client.h); struct_size is what
        CEL_SEND_OPTIONS_INIT() sets in C."""
        _fields_ = [("struct_size", ctypes.c_uint), ("priority", ctypes.c_int),
                    ("queue", ctypes.c_char_p), ("task_id", ctypes.c_char_p),
                    ("countdown", ctypes.c_double), ("has_priority", ctypes.c_int),
                    ("ignore_result", ctypes.c_int)]

        def __init__(self):
            super().__init__()
            self.struct_size = ctypes.sizeof(self)

    def __init__(self, libpath, broker_url, backend_url):
        L = self.lib = ctypes.CDLL(libpath)
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, res, args in [
            ("cel_config_new", vp, []), ("cel_config_free", None, [vp]),
            ("cel_config_set", i, [vp, cp, cp, cp]), ("cel_config_errmsg", cp, [vp]),
            ("cel_client_new", vp, [vp]), ("cel_client_free", None, [vp]),
            ("cel_client_connect", i, [vp]), ("cel_client_errmsg", cp, [vp]),
            ("cel_client_send", i, [vp, cp, cp, cp, ctypes.POINTER(self.SendOptions),
                                    ctypes.POINTER(vp)]),
            ("cel_result_free", None, [vp]), ("cel_result_id", cp, [vp]),
            ("cel_result_wait", i, [vp, ctypes.c_int64]),
            ("cel_result_state_name", cp, [vp]), ("cel_result_value_json", cp, [vp]),
            ("cel_result_exc_type", cp, [vp]), ("cel_result_exc_message", cp, [vp]),
            ("cel_result_traceback", cp, [vp]), ("cel_strerror", cp, [i]),
        ]:
            f = getattr(L, name)
            f.restype, f.argtypes = res, args
        self.cfg = L.cel_config_new()
        for k, v in (("broker_url", broker_url), ("result_backend", backend_url)):
            if L.cel_config_set(self.cfg, k.encode(), v.encode(), b"interop") != 0:
                raise AssertionError(f"cel_config_set {k}: {L.cel_config_errmsg(self.cfg)}")
        self.c = L.cel_client_new(self.cfg)
        rc = L.cel_client_connect(self.c)
        if rc != 0:
            msg = L.cel_client_errmsg(self.c)
            self.close()
            raise AssertionError(f"cel_client_connect: {rc} {msg}")

    def close(self):
        if self.c:
            self.lib.cel_client_free(self.c)
            self.c = None
        if self.cfg:
            self.lib.cel_config_free(self.cfg)
            self.cfg = None

    def call(self, name, args="[]", kwargs="{}", timeout_ms=10000, priority=None, wait=True):
        """Sends one task; waits for it unless wait=False. Returns a dict
        with id, state, value (parsed JSON), exc_type, exc_message."""
        L = self.lib
        opts = self.SendOptions()
        if priority is not None:
            opts.priority, opts.has_priority = priority, True
        r = ctypes.c_void_p()
        rc = L.cel_client_send(self.c, name.encode(), args.encode(), kwargs.encode(),
                               ctypes.byref(opts), ctypes.byref(r))
        if rc != 0:
            raise AssertionError(f"cel_client_send {name}: {rc} {L.cel_client_errmsg(self.c)}")
        try:
            out = {"id": L.cel_result_id(r).decode()}
            if not wait:
                return out
            rc = L.cel_result_wait(r, timeout_ms)
            if rc != 0:
                raise AssertionError(f"cel_result_wait {name}: {rc} "
                                     f"{L.cel_strerror(rc)} {L.cel_client_errmsg(self.c)}")

            def s(v):
                return None if v is None else v.decode()
            out.update(state=s(L.cel_result_state_name(r)),
                       value=json.loads(L.cel_result_value_json(r) or b"null"),
                       exc_type=s(L.cel_result_exc_type(r)),
                       exc_message=s(L.cel_result_exc_message(r)),
                       traceback=s(L.cel_result_traceback(r)))
            return out
        finally:
            L.cel_result_free(r)
