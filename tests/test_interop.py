"""Python Celery 5.7 sends, the Rust worker runs, Python reads the results (rpc://)."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded


def test_echo_round_trips_every_json_type(names, workers, celery_app):
    q = names.queue()
    workers([q])
    args = ["ünïcødé ✓ 𝄞", 2**100, -(2**63), 0, 1.5, 0.1, 1e308, -2.5e-300, None, True, False,
            [], {}, {"nested": [1, {"deep": [None, "x"]}]}, ""]
    kwargs = {"big": 2**64 + 1, "neg": -1, "text": "line\nbreak \"quoted\"", "none": None,
              "list": [1.25, "a", [True]], "ключ": "значение"}
    result = celery_app.send_task("maestro.echo", args=args, kwargs=kwargs, queue=q).get(timeout=30)
    assert result == [args, kwargs]


def test_noop_and_many_tasks_in_flight(names, workers, celery_app):
    q = names.queue()
    workers([q])
    results = [celery_app.send_task("maestro.echo", args=[i], queue=q) for i in range(300)]
    assert [r.get(timeout=60) for r in results] == [[[i], {}] for i in range(300)]
    assert celery_app.send_task("maestro.noop", queue=q).get(timeout=30) is None


def test_failure_reads_as_a_python_exception(names, workers, celery_app):
    q = names.queue()
    workers([q])
    r = celery_app.send_task("maestro.fail", args=["boom: failed on purpose"], queue=q)
    with pytest.raises(RuntimeError, match="boom: failed on purpose"):
        r.get(timeout=30)
    assert r.state == "FAILURE"
    assert "RuntimeError: boom: failed on purpose" in r.traceback


def test_wrong_arguments_are_a_type_error(names, workers, celery_app):
    q = names.queue()
    workers([q])
    with pytest.raises(TypeError, match="seconds"):
        celery_app.send_task("maestro.sleep", args=["soon"], queue=q).get(timeout=30)


def test_countdown_runs_after_its_delay_through_the_broker(names, workers, celery_app, amqp):
    q = names.queue()
    workers([q])
    sent = time.monotonic()
    r = celery_app.send_task("maestro.echo", args=["later"], queue=q, countdown=2)
    # The early message left the task queue for the delay queues at once.
    time.sleep(0.5)
    assert amqp.ready(q) == 0
    assert sum(amqp.ready(d) or 0 for d in names.delay_queues()) == 1
    assert r.get(timeout=30) == [["later"], {}]
    assert time.monotonic() - sent >= 2.0


def test_far_eta_waits_in_the_broker_not_the_worker(names, workers, celery_app, amqp):
    q = names.queue()
    workers([q])
    eta = datetime.now(timezone.utc) + timedelta(hours=1)
    celery_app.send_task("maestro.noop", queue=q, eta=eta)
    # 3600 s = 0b111000010000: the first level it waits in is 2^11 s.
    level = f"{names.delay_prefix}_11"
    from conftest import wait_for
    wait_for(lambda: amqp.ready(level) == 1, 15, what="message in delay level 11")
    assert amqp.ready(q) == 0


def test_expired_task_is_revoked_not_run(names, workers, celery_app):
    q = names.queue()
    w = workers([q], args=["--log-level", "maestro_worker=debug"])
    # Expires before its countdown: the worker moves it into the delay queues (without the
    # broker TTL Celery sets from `expires`), and when it comes back it has expired. (An
    # `expires` already past when sent gets TTL 0 from Celery, and RabbitMQ may drop it before
    # any worker sees it.)
    r = celery_app.send_task("maestro.echo", args=["never"], queue=q, countdown=2, expires=1)
    with pytest.raises(TaskRevokedError):
        r.get(timeout=30)
    assert r.state == "REVOKED"
    assert "task_expired" in w.log()
    assert "task_started" not in w.log()


def test_time_limits_from_the_message(names, workers, celery_app):
    q = names.queue()
    workers([q])
    with pytest.raises(TimeLimitExceeded):
        celery_app.send_task("maestro.sleep", args=[30], queue=q, time_limit=1).get(timeout=30)
    with pytest.raises(SoftTimeLimitExceeded):
        celery_app.send_task("maestro.sleep", args=[30], queue=q, soft_time_limit=1).get(timeout=30)


def test_default_time_limit_from_the_environment(names, workers, celery_app):
    q = names.queue()
    workers([q], env={"CELERYD_TASK_TIME_LIMIT": "1"})
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded):
        celery_app.send_task("maestro.sleep", args=[30], queue=q).get(timeout=30)
    assert time.monotonic() - started < 10


def test_worker_consumes_several_queues(names, workers, celery_app):
    a, b = names.queue("a"), names.queue("b")
    workers([a, b])
    assert celery_app.send_task("maestro.echo", args=["a"], queue=a).get(timeout=30) == [["a"], {}]
    assert celery_app.send_task("maestro.echo", args=["b"], queue=b).get(timeout=30) == [["b"], {}]
