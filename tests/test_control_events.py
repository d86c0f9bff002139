"""Remote control (celery.pidbox) and events (celeryev) as Celery's own tools use them."""
import json
import os
import subprocess
import sys
import time

import pika
import pytest
from celery.exceptions import TaskRevokedError

from conftest import AMQP_URL, BROKER_URL, wait_for


def node_of(app, q, celery_app):
    """The worker's node name, as it answers a broadcast ping."""
    replies = wait_for(lambda: celery_app.control.inspect(timeout=2).ping(), 30, interval=0.5, what="a ping reply")
    mine = [n for n in replies if n.startswith(app)]
    assert mine, replies
    return mine[0]


def test_inspect_and_revoke(names, workers, celery_app):
    q = names.queue()
    workers([q])
    node = node_of(f"w0-{names.run}@", q, celery_app)
    insp = celery_app.control.inspect(destination=[node], timeout=5)
    assert insp.ping() == {node: {"ok": "pong"}}
    assert "maestro.echo" in insp.registered()[node]
    running = celery_app.send_task("maestro.sleep", args=[3], queue=q)
    wait_for(lambda: any(t["id"] == running.id for t in insp.active()[node]), 15, what="task listed as active")
    assert running.get(timeout=30) == 3
    stats = insp.stats()[node]
    assert stats["total"]["maestro.sleep"] == 1
    assert stats["prefetch_count"] == 256
    assert insp.active_queues()[node][0]["name"] == q

    later = celery_app.send_task("maestro.echo", args=["never"], queue=q, countdown=2)
    celery_app.control.revoke(later.id, destination=[node])
    with pytest.raises(TaskRevokedError):
        later.get(timeout=30)


def test_celery_inspect_ping_command_line(names, workers, celery_app):
    q = names.queue()
    workers([q])
    node = node_of(f"w0-{names.run}@", q, celery_app)
    out = subprocess.run([sys.executable, "-m", "celery", "-b", BROKER_URL, "inspect", "ping", "-d", node, "-t", "5"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pong" in out.stdout and node in out.stdout


def test_events_for_tasks_and_heartbeats(names, workers, celery_app):
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.exchange_declare("celeryev", "topic", durable=True)
    listen = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(listen, "celeryev", "#")
    q = names.queue()
    workers([q], args=["-E"])
    r = celery_app.send_task("maestro.echo", args=["evented"], queue=q)
    assert r.get(timeout=30) == [["evented"], {}]
    events, deadline = [], time.time() + 15
    while time.time() < deadline and not any(e.get("type") == "worker-heartbeat" for e in events):
        method, props, body = ch.basic_get(listen, auto_ack=True)
        if method is None:
            time.sleep(0.1)
            continue
        payload = json.loads(body)
        for e in payload if isinstance(payload, list) else [payload]:
            if e.get("hostname", "").startswith(f"w0-{names.run}@"):
                events.append(e)
    conn.close()
    kinds = [e["type"] for e in events]
    assert "worker-online" in kinds and "worker-heartbeat" in kinds
    mine = [e["type"] for e in events if e.get("uuid") == r.id]
    assert mine == ["task-received", "task-started", "task-succeeded"], kinds
    received = next(e for e in events if e.get("uuid") == r.id)
    assert received["name"] == "maestro.echo" and received["clock"] >= 1
