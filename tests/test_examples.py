"""The example workers of examples/ (built with the workspace), each served to a Python
Celery 5 client: typed tasks called by position and keyword with Python's TypeErrors for bad
calls, a chord started from Rust, and a CPU-bound task that does not stall its neighbours."""
import pathlib
import time

import subprocess

import pytest

from conftest import WORKER_BIN, backend_url

BIN_DIR = pathlib.Path(WORKER_BIN).parent


def example(name):
    path = BIN_DIR / f"example-{name}"
    assert path.exists(), f"{path} is built by `cargo build --workspace --bins`"
    return str(path)


def error_of(result):
    with pytest.raises(Exception) as e:
        result.get(timeout=30)
    return type(e.value).__name__, str(e.value)


def test_minimal_worker_serves_typed_tasks_to_python(names, workers, celery_app):
    q = names.queue("myapp")
    w = workers([q], binary=example("minimal"))
    send = lambda task, *args, **kwargs: celery_app.send_task(task, args=args, kwargs=kwargs, queue=q)
    assert send("myapp.add", 2, 3).get(timeout=30) == 5
    assert send("myapp.add", x=-4, y=10).get(timeout=30) == 6
    assert send("myapp.slugify", "Hello, World!").get(timeout=30) == "hello-world"
    assert send("myapp.slugify", "Hello, World!", max_len=5).get(timeout=30) == "hello"
    assert send("myapp.slugify", text="A b", max_len=40).get(timeout=30) == "a-b"
    # Bad calls fail as Python would have failed them, naming the parameter.
    assert error_of(send("myapp.add", 1)) == (
        "TypeError", "add() missing 1 required positional argument: 'y'")
    assert error_of(send("myapp.add", 1, 2, 3)) == (
        "TypeError", "add() takes 2 positional arguments but 3 were given")
    assert error_of(send("myapp.add", 1, 2, z=3)) == (
        "TypeError", "add() got an unexpected keyword argument 'z'")
    kind, text = error_of(send("myapp.add", "one", 2))
    assert kind == "TypeError" and text.startswith("add() argument 'x': invalid type: string")
    assert error_of(send("myapp.slugify", "x", max_len=0)) == (
        "ValueError", "max_len must be at least 1")
    assert w.proc.poll() is None


def test_a_bad_setting_is_refused_with_its_name():
    out = subprocess.run([example("minimal"), "--concurrency", "0"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "CELERYD_CONCURRENCY" in out.stderr, out.stderr


def test_chord_worker_fans_out_and_joins(names, workers, mongo, mongo_app):
    q = names.queue("myapp")
    workers([q], args=["--result-backend", backend_url(mongo), "--default-queue", q],
            binary=example("chord"))
    callback_id = mongo_app.send_task("myapp.sum_of_squares", args=[10], queue=q).get(timeout=30)
    assert mongo_app.AsyncResult(callback_id).get(timeout=60) == sum(x * x for x in range(10))
    kind, text = error_of(mongo_app.send_task("myapp.sum_of_squares", args=[0], queue=q))
    assert kind == "ValueError" and "n must be 1 to 10000" in text


def test_cpu_bound_task_runs_beside_async_ones(names, workers, celery_app):
    q = names.queue("myapp")
    workers([q], binary=example("cpu"))
    send = lambda task, *args, **opts: celery_app.send_task(task, args=args, queue=q, **opts)
    assert send("myapp.count_primes", 100).get(timeout=30) == 25
    busy = send("myapp.count_primes", 100_000_000)
    time.sleep(0.5)
    started = time.monotonic()
    assert send("myapp.ping").get(timeout=30) == "pong"
    assert time.monotonic() - started < 5, "the sieve stalled the async thread"
    assert not busy.ready(), "the sieve should still be running"
    # The soft time limit reaches the blocking code, which stops cleanly.
    stopped = send("myapp.count_primes", 500_000_000, soft_time_limit=0.5)
    kind, _ = error_of(stopped)
    assert kind == "SoftTimeLimitExceeded"
    assert busy.get(timeout=120) == 5_761_455
