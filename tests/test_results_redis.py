"""Results in Redis, in Celery's key layout: Python Celery 5.7 clients with
result_backend='redis://host/db' read what the Rust worker stored (and are woken by its
publish), a SUCCESS is never overwritten, failures arrive as Python exceptions, and a chord
started by a Rust task joins through Redis. Every test deletes the keys of its own task ids."""
import os
import pathlib

import pytest
import redis
from celery import Celery

from conftest import BROKER_URL, WORKER_BIN, wait_for

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rdb():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (scripts/test.sh starts one)")
    created = []
    yield client, created
    for pattern in created:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    client.close()


@pytest.fixture
def redis_app(names, amqp, rdb):
    app = Celery(f"redis-{names.run}", broker=BROKER_URL, backend=REDIS_URL)
    app.conf.update(broker_connection_retry_on_startup=True)
    yield app
    app.close()


def track(rdb, *ids):
    for i in ids:
        rdb[1].append(f"*{i}*")


def test_python_reads_results_and_failures_from_redis(names, workers, rdb, redis_app):
    q = names.queue()
    workers([q], args=["--result-backend", REDIS_URL])
    args = ["ünï", 2**62, 1.5, None, {"deep": [True]}]
    r = redis_app.send_task("maestro.echo", args=args, kwargs={"k": "v"}, queue=q)
    f = redis_app.send_task("maestro.fail", args=["stored failure"], queue=q)
    track(rdb, r.id, f.id)
    assert r.get(timeout=30) == [args, {"k": "v"}]
    raw = rdb[0].get(f"celery-task-meta-{r.id}")
    meta = redis_app.backend.decode(raw)
    assert meta["status"] == "SUCCESS" and meta["task_id"] == r.id
    assert meta["date_done"] and meta["children"] == []
    assert 0 < rdb[0].ttl(f"celery-task-meta-{r.id}") <= 86_400, "results expire"
    with pytest.raises(RuntimeError, match="stored failure"):
        f.get(timeout=30)
    assert f.state == "FAILURE"
    assert "RuntimeError: stored failure" in f.traceback


def test_a_success_in_redis_is_never_overwritten(names, workers, rdb, redis_app):
    q = names.queue()
    workers([q], args=["--result-backend", REDIS_URL])
    r = redis_app.send_task("maestro.echo", args=["first"], queue=q)
    track(rdb, r.id)
    assert r.get(timeout=30) == [["first"], {}]
    # The same id again, with other arguments: not run, the first SUCCESS stays.
    again = redis_app.send_task("maestro.echo", args=["second"], queue=q, task_id=r.id)
    ping = redis_app.send_task("maestro.echo", args=["after"], queue=q)
    track(rdb, ping.id)
    assert ping.get(timeout=30) == [["after"], {}]
    assert redis_app.AsyncResult(again.id).get(timeout=30) == [["first"], {}]


def test_a_rust_chord_joins_through_redis(names, workers, rdb, redis_app):
    q = names.queue("myapp")
    binary = pathlib.Path(WORKER_BIN).parent / "example-chord"
    workers([q], args=["--result-backend", REDIS_URL, "--default-queue", q],
            binary=str(binary))
    start = redis_app.send_task("myapp.sum_of_squares", args=[20], queue=q)
    callback_id = start.get(timeout=30)
    track(rdb, start.id, callback_id)
    assert redis_app.AsyncResult(callback_id).get(timeout=60) == sum(x * x for x in range(20))
    # The members: the task metas whose parent is the task that started the chord.
    members = []
    for key in rdb[0].scan_iter(match="celery-task-meta-*", count=1000):
        meta = redis_app.backend.decode(rdb[0].get(key) or b"{}") or {}
        if meta.get("parent_id") == start.id:
            members.append(meta)
    assert len(members) == 20 and all(m["status"] == "SUCCESS" for m in members)
    groups = {m["group_id"] for m in members}
    assert len(groups) == 1
    track(rdb, *[m["task_id"] for m in members], *groups)
    saved = redis_app.backend.decode(rdb[0].get(f"celery-taskset-meta-{groups.pop()}"))
    assert len(saved["result"][1]) == 20, "the group saved as Celery's GroupResult tuple"


def test_an_unreachable_redis_is_retried_and_shutdown_still_works(names, workers):
    q = names.queue()
    w = workers([q], args=["--result-backend", "redis://127.0.0.1:1/0"], ready=False)
    wait_for(lambda: w.log().count("result_store_unreachable") >= 2, 30, what="two attempts")
    assert w.stop(timeout=15) == 0
