"""Canvas across Python and Rust: links, errbacks, chains, groups and chords sent by Python
Celery 5.7, with steps run by Rust workers and by a Python worker, results in MongoDB."""
import json
import os
import signal
import subprocess
import sys

import pytest
from celery import chain, chord, group
from celery.canvas import chunks, xmap, xstarmap

from conftest import ROOT, backend_url, wait_for


@pytest.fixture
def py_queue(names, mongo, tmp_path):
    """A Python Celery worker (tests/pyworker) on a queue of its own, results in MongoDB."""
    q = names.queue("py")
    log = open(tmp_path / "py-worker.log", "w")
    env = dict(os.environ, INTEROP_BACKEND=backend_url(mongo))
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "interop_app", "worker", "-Q", q,
                             "--pool=solo", "--loglevel=INFO", "-n", f"py-{names.run}@%h",
                             "--without-gossip", "--without-mingle"],
                            cwd=ROOT / "tests" / "pyworker", env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for(lambda: "ready" in (tmp_path / "py-worker.log").read_text(), 60, what="python worker ready")
    yield q
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture
def rust_queue(names, workers, mongo):
    """A Rust worker on its own queue and the test's chord_unlock queue, results in MongoDB."""
    q, unlock = names.queue("rs"), names.queue("unlock")
    rust_queue.worker = workers([q, unlock], args=["--result-backend", backend_url(mongo), "--default-queue", unlock])
    return q


@pytest.fixture
def app(mongo_app, names):
    mongo_app.conf.task_default_queue = names.queue("unlock")
    return mongo_app


def test_link_gets_the_result_and_errback_the_task_id(rust_queue, app):
    link = app.signature("maestro.echo", args=["linked"], queue=rust_queue)
    link_id = link.freeze().id
    r = app.send_task("maestro.echo", args=[1], queue=rust_queue, link=link)
    assert r.get(timeout=30) == [[1], {}]
    assert app.AsyncResult(link_id).get(timeout=30) == [[[[1], {}], "linked"], {}]

    errback = app.signature("maestro.echo", queue=rust_queue)
    errback_id = errback.freeze().id
    f = app.send_task("maestro.fail", args=["for the errback"], queue=rust_queue, link_error=errback)
    with pytest.raises(RuntimeError):
        f.get(timeout=30)
    assert app.AsyncResult(errback_id).get(timeout=30) == [[f.id], {}]


def test_chain_mixing_python_and_rust_steps(rust_queue, py_queue, app):
    c = chain(app.signature("maestro.echo", args=[1], queue=rust_queue),
              app.signature("interop.wrap", queue=py_queue),
              app.signature("maestro.echo", args=["last"], queue=rust_queue))
    res = c.apply_async()
    assert res.get(timeout=60) == [[{"got": [[1], {}]}, "last"], {}]
    assert res.parent.get(timeout=10) == {"got": [[1], {}]}


def test_a_failed_step_fails_the_rest_of_the_chain(rust_queue, app):
    c = chain(app.signature("maestro.fail", args=["step one broke"], queue=rust_queue),
              app.signature("maestro.echo", queue=rust_queue))
    res = c.apply_async()
    with pytest.raises(RuntimeError, match="step one broke"):
        res.get(timeout=30)
    # The first step's own FAILURE is stored first (get() raised from it), the rest of the
    # chain just after, as Celery orders it.
    wait_for(lambda: res.state == "FAILURE", 15, what="the last step stored as FAILURE")


def test_group_mixing_python_and_rust(rust_queue, py_queue, app):
    g = group(app.signature("maestro.echo", args=[1], queue=rust_queue),
              app.signature("interop.wrap", args=[2], queue=py_queue),
              app.signature("maestro.echo", args=[3], queue=rust_queue))
    assert g.apply_async().get(timeout=60) == [[[1], {}], {"got": 2}, [[3], {}]]


def test_chord_mixing_python_and_rust_fires_once(rust_queue, py_queue, app):
    header = [app.signature("maestro.echo", args=[i], queue=rust_queue) for i in range(4)]
    header.append(app.signature("interop.wrap", args=[9], queue=py_queue))
    body = app.signature("maestro.echo", args=["sum"], queue=rust_queue)
    res = chord(header)(body)
    expected = [[[[0], {}], [[1], {}], [[2], {}], [[3], {}], {"got": 9}], "sum"]
    assert res.get(timeout=60) == [expected, {}]
    wait_for(lambda: rust_queue_log().count("chord_complete") >= 1, 10, what="chord_complete logged")
    assert rust_queue_log().count("chord_complete") == 1


def test_chord_of_rust_members_fires_once_by_the_count(rust_queue, app):
    header = [app.signature("maestro.echo", args=[i], queue=rust_queue) for i in range(10)]
    res = chord(header)(app.signature("maestro.echo", queue=rust_queue))
    assert res.get(timeout=60) == [[[[[i], {}] for i in range(10)]], {}]
    assert rust_queue_log().count("chord_complete") == 1


def test_chord_with_a_failed_member_fails_the_callback(rust_queue, app, mongo):
    header = [app.signature("maestro.echo", args=[1], queue=rust_queue),
              app.signature("maestro.fail", args=["member broke"], queue=rust_queue)]
    res = chord(header)(app.signature("maestro.echo", queue=rust_queue))
    # Celery's get() follows parents: the failed member's own error is raised first.
    with pytest.raises(RuntimeError, match="member broke"):
        res.get(timeout=60)
    callback = app.AsyncResult(res.id)
    wait_for(lambda: callback.state == "FAILURE", 30, what="callback stored as FAILURE")
    doc = mongo.celery_taskmeta.find_one({"_id": res.id})
    assert json.loads(doc["result"])["exc_type"] == "ChordError"
    assert rust_queue_log().count("follow_up_sent") == 0  # the callback never ran


def rust_queue_log():
    return rust_queue.worker.log()


def test_map_starmap_and_chunks_from_a_python_client(rust_queue, app):
    echo = app.signature("maestro.echo")
    # task.map / task.starmap: celery.map and celery.starmap, one call per item in one run.
    assert xmap(echo, [1, [2, 3]], app=app).apply_async(queue=rust_queue).get(timeout=30) == [
        [[1], {}], [[[2, 3]], {}]]
    assert xstarmap(echo, [[1, 2], ["a"]], app=app).apply_async(queue=rust_queue).get(
        timeout=30) == [[[1, 2], {}], [["a"], {}]]
    # task.chunks: a group of celery.starmap parts, sent by the client.
    parts = chunks(echo, zip(range(5), range(5)), 2, app=app).apply_async(queue=rust_queue)
    assert parts.get(timeout=30) == [[[[0, 0], {}], [[1, 1], {}]], [[[2, 2], {}], [[3, 3], {}]],
                                     [[[4, 4], {}]]]
    # celery.chunks sent as one task: the worker sends the parts and returns the group.
    r = app.send_task("celery.chunks", args=[dict(echo), [[0, 1], [2, 3], [4, 5]], 2],
                      queue=rust_queue)
    (group_id, _), members = r.get(timeout=30)
    assert len(members) == 2
    assert [app.AsyncResult(m[0][0]).get(timeout=30) for m in members] == [
        [[[0, 1], {}], [[2, 3], {}]], [[[4, 5], {}]]]
    # celery.accumulate, and an inner task this worker does not know.
    assert app.send_task("celery.accumulate", args=[1, 2, 3], kwargs={"index": -1},
                         queue=rust_queue).get(timeout=30) == 3
    with pytest.raises(Exception) as e:
        xmap(app.signature("python.only"), [1], app=app).apply_async(queue=rust_queue).get(
            timeout=30)
    assert type(e.value).__name__ == "NotRegistered", e.value
