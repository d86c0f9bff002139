"""What the worker does under bad input and faults: poison messages, SIGKILL mid-task,
SIGTERM with tasks running, a dropped broker connection, bad configuration."""
import json
import signal
import subprocess
import time
import uuid

import pika

from conftest import WORKER_BIN, wait_for


def celery_props(task, task_id=None, **headers):
    task_id = task_id or str(uuid.uuid4())
    h = {"lang": "py", "task": task, "id": task_id, "retries": 0, "timelimit": [None, None],
         "root_id": task_id, "parent_id": None, "ignore_result": True}
    h.update(headers)
    return pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                delivery_mode=2, correlation_id=task_id, headers=h)


GOOD_BODY = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()


def test_poison_messages_go_to_the_dead_letter_queue_with_a_reason(names, workers, celery_app, amqp):
    q = names.queue()
    w = workers([q], args=["--max-body-bytes", "4096"])
    poison = {
        "not-json": ("undecodable", celery_props("maestro.noop"), b"{this is not json"),
        "pickle": ("unsupported-content-type",
                   pika.BasicProperties(content_type="application/x-python-serialize",
                                        headers={"task": "maestro.noop", "id": "p-1"}), b"\x80\x04K\x01."),
        "unknown": ("unknown-task", celery_props("no.such.task"), GOOD_BODY),
        "protocol-v1": ("undecodable", pika.BasicProperties(content_type="application/json"),
                        json.dumps({"task": "maestro.noop", "id": "v1", "args": [], "kwargs": {}}).encode()),
        "bad-header": ("undecodable", celery_props("maestro.noop", retries="three"), GOOD_BODY),
        "bad-body-shape": ("undecodable", celery_props("maestro.noop"), b'[{"a": 1}, {}, {}]'),
        "oversized": ("oversized", celery_props("maestro.noop"),
                      json.dumps([["x" * 5000], {}, {}]).encode()),
        "not-utf8": ("undecodable", celery_props("maestro.noop"), b"\xff\xfe\xfd"),
    }
    for label, (_, props, body) in poison.items():
        props.message_id = label
        amqp.publish(q, body, props)
    # The worker keeps running and still serves good tasks.
    assert celery_app.send_task("maestro.echo", args=["alive"], queue=q).get(timeout=30) == [["alive"], {}]
    wait_for(lambda: amqp.ready(names.dead_queue) == len(poison), 30, what="all poison dead-lettered")
    dead = amqp.get_all(names.dead_queue)
    by_id = {props.message_id: (props, body) for _, props, body in dead}
    for label, (reason, _, body) in poison.items():
        props, dead_body = by_id[label]
        assert props.headers["x-maestro-dead-reason"] == reason, label
        assert props.headers["x-maestro-dead-queue"] == q
        assert props.headers["x-maestro-dead-detail"]
        assert dead_body == body, f"{label}: the dead letter keeps the body unchanged"
    assert amqp.ready(q) == 0
    assert w.proc.poll() is None
    assert w.log().count("dead_lettered") == len(poison)


def test_sigkill_mid_task_leaves_it_to_be_redelivered_and_completed(names, workers, celery_app, amqp):
    q = names.queue()
    first = workers([q], args=["-c", "1", "--log-level", "maestro_worker=debug"])
    r = celery_app.send_task("maestro.sleep", args=[3], queue=q)
    wait_for(lambda: "task_started" in first.log(), 30, what="task started on the first worker")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    second = workers([q], args=["--log-level", "maestro_worker=debug"])
    assert r.get(timeout=60) == 3
    assert "task_started" in second.log()
    assert amqp.ready(q) == 0


def test_a_message_that_kills_every_worker_running_it_is_dead_lettered(
        names, workers, celery_app, amqp, mongo):
    # A poison message stands in for one that OOM-kills its worker: each worker that starts it
    # is SIGKILLed. After its first run and MAESTRO_MAX_REDELIVERIES more, the next worker
    # dead-letters it instead of dying too; tasks queued behind it run.
    from conftest import backend_url
    q = names.queue()
    args = ["-c", "1", "--prefetch-multiplier", "1", "--max-redeliveries", "2",
            "--result-backend", backend_url(mongo), "--log-level", "info,maestro_worker=debug"]
    poison = celery_app.send_task("maestro.sleep", args=[60], queue=q)
    for run in range(3):
        w = workers([q], args=args)
        wait_for(lambda: "task_started" in w.log(), 30, what=f"run {run + 1} of the poison message")
        w.proc.send_signal(signal.SIGKILL)
        w.proc.wait()
    behind = celery_app.send_task("maestro.echo", args=["behind"], queue=q)
    last = workers([q], args=args)
    wait_for(lambda: amqp.ready(names.dead_queue) == 1, 30, what="the poison dead-lettered")
    (_, props, _), = amqp.get_all(names.dead_queue)
    assert props.headers["x-maestro-dead-reason"] == "redelivered-too-often"
    assert "started 3 times" in props.headers["x-maestro-dead-detail"]
    wait_for(lambda: (mongo["celery_taskmeta"].find_one({"_id": behind.id}) or {}).get("status")
             == "SUCCESS", 30, what="the task behind it")
    assert last.proc.poll() is None
    assert mongo["maestro_redeliveries"].find_one({"_id": poison.id})["starts"] == 3


def test_sigterm_lets_running_tasks_finish_then_exits_zero(names, workers, celery_app, amqp):
    q = names.queue()
    w = workers([q], args=["--log-level", "info,maestro_worker=debug"])
    r = celery_app.send_task("maestro.sleep", args=[2], queue=q)
    wait_for(lambda: "task_started" in w.log(), 30, what="task started")
    assert w.stop(timeout=30) == 0
    assert r.get(timeout=10) == 2
    assert amqp.ready(q) == 0
    assert '"stopped"' in w.log()
    # A clean stop logs no error: every channel is closed before the connection (lapin logged
    # "Connection error ... Closing (channel.close)" for channels left to close on drop).
    assert " ERROR " not in w.log(), w.log()


def test_sigterm_requeues_what_outlives_the_grace_period(names, workers, celery_app, amqp):
    q = names.queue()
    w = workers([q], args=["--shutdown-grace", "1", "--log-level", "maestro_worker=debug"])
    celery_app.send_task("maestro.sleep", args=[60], queue=q)
    for i in range(5):
        celery_app.send_task("maestro.sleep", args=[60], queue=q)
    wait_for(lambda: w.log().count("task_started") == 6, 30, what="six tasks started")
    started = time.monotonic()
    assert w.stop(timeout=30) == 0
    assert time.monotonic() - started < 10
    # Nothing acknowledged is unfinished: all six are back on the queue.
    wait_for(lambda: amqp.ready(q) == 6, 15, what="six messages requeued")


def test_reconnects_after_the_broker_drops_the_connection(names, workers, celery_app):
    q = names.queue()
    w = workers([q])
    assert celery_app.send_task("maestro.echo", args=[1], queue=q).get(timeout=30) == [[1], {}]
    node = w.node.replace("%h", "")
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                         capture_output=True, text=True, timeout=60).stdout
    pids = [line.split()[0] for line in out.splitlines() if f"maestro-worker {node}" in line]
    assert pids, f"worker connection not found in:\n{out}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: simulated broker failure"],
                       check=True, timeout=60)
    w.wait_ready(count=2, timeout=60)
    assert "connection_lost" in w.log()
    assert celery_app.send_task("maestro.echo", args=[2], queue=q).get(timeout=30) == [[2], {}]


def test_declares_celerys_topology(names, workers, amqp):
    q = names.queue()
    workers([q])
    out = subprocess.run(["rabbitmqctl", "-q", "list_exchanges", "name", "type", "durable"],
                         capture_output=True, text=True, timeout=60).stdout
    rows = {tuple(line.split("\t")) for line in out.splitlines()}
    assert (q, "direct", "true") in rows
    assert (f"{names.delay_prefix}_delivery", "topic", "true") in rows
    assert (f"{names.delay_prefix}_27", "topic", "true") in rows
    out = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "source_name", "destination_name", "routing_key"],
                         capture_output=True, text=True, timeout=60).stdout
    rows = {tuple(line.split("\t")) for line in out.splitlines()}
    assert (q, q, q) in rows
    assert (f"{names.delay_prefix}_delivery", q, "*." * 28 + q) in rows
    assert amqp.consumers(q) == 1


def run_worker(*args, timeout=20):
    return subprocess.run([WORKER_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_bad_configuration_is_refused_naming_the_field():
    cases = [
        (["-c", "0"], "CELERYD_CONCURRENCY"),
        (["-b", "redis://localhost:6379/0"], "CELERY_BROKER_URL"),
        (["-Q", "amq.reserved"], "--queues"),
        (["--time-limit", "soon"], "--time-limit"),
        (["--result-backend", "couchdb://localhost/0"], "CELERY_RESULT_BACKEND"),
        (["--log-level", "maestro=loud"], "MAESTRO_LOG_LEVEL"),
    ]
    for args, field in cases:
        out = run_worker(*args)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert field in out.stderr, (args, out.stderr)
        assert "panicked" not in out.stderr


def test_unreachable_broker_is_retried_until_sigterm(tmp_path):
    log = open(tmp_path / "w.log", "w")
    proc = subprocess.Popen([WORKER_BIN, "-b", "amqp://guest:guest@127.0.0.1:1//", "-Q", "unused"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: (tmp_path / "w.log").read_text().count("broker_unreachable") >= 2, 20,
                 what="two connection attempts")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
