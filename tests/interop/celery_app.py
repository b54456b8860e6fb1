"""Python Celery side of the interop suite.

The tasks below carry the SAME names as the C example module
(examples/tasks.c) and behave the same way, so a message can be served by
either a celeriac worker or this app's Python worker and the client cannot
tell the difference. `py.only.*` tasks exist only here: a celeriac worker
does not know them.

Configuration comes from the environment, so the worker the harness starts
and the clients the tests build agree:

  CEL_INTEROP_BROKER     broker URL (redis://127.0.0.1:PORT/0)
  CEL_INTEROP_BACKEND    result backend URL (redis://127.0.0.1:PORT/1)
  CEL_INTEROP_VT         broker visibility timeout in seconds (default 3600)
  CEL_INTEROP_PREFETCH   worker_prefetch_multiplier (default 4, Celery's)
"""
import os
import time

from celery import Celery


def make_app(broker=None, backend=None, visibility_timeout=None):
    """A fresh app with every task registered; arguments override the env."""
    broker = broker or os.environ.get("CEL_INTEROP_BROKER", "redis://127.0.0.1:6379/0")
    backend = backend or os.environ.get("CEL_INTEROP_BACKEND", "redis://127.0.0.1:6379/1")
    if visibility_timeout is None:
        visibility_timeout = float(os.environ.get("CEL_INTEROP_VT", "3600"))
    app = Celery("celery_app", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=int(os.environ.get("CEL_INTEROP_PREFETCH", "4")),
        worker_hijack_root_logger=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        result_backend_transport_options={"visibility_timeout": visibility_timeout},
    )

    @app.task(name="tasks.add")
    def add(x, y):
        return x + y

    @app.task(name="tasks.mul")
    def mul(x, y):
        return x * y

    @app.task(name="tasks.xsum")
    def xsum(numbers):
        return sum(numbers)

    @app.task(name="tasks.echo")
    def echo(*args, **kwargs):
        # Same shape as the C echo: the args back, or {"args", "kwargs"}.
        if kwargs:
            return {"args": list(args), "kwargs": kwargs}
        return list(args)

    @app.task(name="tasks.noop")
    def noop():
        return None

    # acks_late so a message that was running when the worker died is
    # still in `unacked` and comes back after the visibility timeout, as it
    # does with the celeriac worker (which always acks late).
    @app.task(name="tasks.sleep", acks_late=True)
    def sleep(seconds):
        time.sleep(seconds)
        return seconds

    @app.task(name="tasks.fail")
    def fail(message="boom"):
        raise ValueError(message)

    # The Python half of tasks.fail_times (examples/tasks.c): it continues
    # a retry a celeriac worker scheduled, so it only ever runs as a retry
    # and reports what the retried message's headers said.
    @app.task(name="tasks.fail_times", bind=True)
    def fail_times(self, path, n, countdown=0.2):
        if self.request.retries < 1:
            raise self.retry(countdown=countdown, max_retries=5)
        return {"by": "python", "retries": self.request.retries, "args": [path, n, countdown],
                "root_id": self.request.root_id, "parent_id": self.request.parent_id,
                "id": self.request.id}

    @app.task(name="py.only.upper")
    def upper(text):
        return text.upper()

    @app.task(name="py.only.pid")
    def pid():
        return os.getpid()

    # What a periodic run looks like from inside a Python task: the entry
    # name beat put in the message's headers (test_beat_interop.py).
    @app.task(name="py.only.periodic", bind=True)
    def periodic(self, label):
        return [label, getattr(self.request, "periodic_task_name", None)]

    # ---- issue 8, workflows (h-interop): twins of the test module's
    # canvas tasks (tests/support/test_tasks.c), so a Python worker can
    # serve the same workflows and test_canvas_interop.py can be checked
    # against Celery itself (CEL_INTEROP_CANVAS_PEER=python).
    @app.task(name="test.replace_add", bind=True)
    def replace_add(self, x):
        # Task.replace: the chain and callbacks of this task continue
        # after tasks.add(x, 100), whose result becomes this task's.
        raise self.replace(app.signature("tasks.add", args=(x, 100)))

    @app.task(name="test.echo")
    def test_echo(s):
        return s

    @app.task(name="test.stamp")
    def stamp(label, seconds=0.05):
        # Appends "<label> <start µs> <end µs>" (wall clock) to
        # $CEL_TEST_TREE_FILE, sleeping `seconds` in between; returns label.
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        with open(os.environ["CEL_TEST_TREE_FILE"], "a") as f:
            f.write(f"{label} {int(start * 1e6)} {int(end * 1e6)}\n")
        return label

    return app


# The module-level app is what `celery -A celery_app worker` runs.
app = make_app()
