"""Operating these workers with Celery's own tools: every `celery inspect` and `celery control`
command from the command line, worker events by default and task events on request, revoke
that stops a running task and frees its slot, revocations that survive a restart and reach
workers that start later, and Flower 2 listing, showing and controlling the workers."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pika
import pytest

from conftest import AMQP_URL, BROKER_URL, amqp_params, wait_for


def celery(*args, timeout=60):
    """`celery -b <broker> <args> -j`: the parsed JSON reply."""
    out = subprocess.run([sys.executable, "-m", "celery", "-b", BROKER_URL, *args, "-j"],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def inspect(node, *command):
    return celery("inspect", *command, "-d", node, "-t", "5")[node]


def control(node, *command):
    replies = celery("control", *command, "-d", node, "-t", "5")
    return next(r[node] for r in replies if node in r)


def started(names, workers, *args, index=0, queues=None):
    queues = queues or [names.queue(f"q{index}")]
    q = queues[0]
    w = workers(queues, args=list(args))
    node = f"w{index}-{names.run}@{socket.gethostname()}"
    wait_for(lambda: celery("inspect", "ping", "-d", node, "-t", "2").get(node), 30,
             interval=0.5, what="the worker answering ping")
    return q, w, node


def test_every_inspect_command_answers_in_celerys_shape(names, workers, celery_app):
    q, w, node = started(names, workers)
    assert inspect(node, "ping") == {"ok": "pong"}
    r = celery_app.send_task("maestro.echo", args=["x"], queue=q)
    assert r.get(timeout=30) == [["x"], {}]
    stats = inspect(node, "stats")
    assert stats["total"] == {"maestro.echo": 1}
    assert stats["pool"]["max-concurrency"] == 64 and stats["prefetch_count"] == 256
    assert stats["rusage"]["maxrss"] > 0 and stats["broker"]["transport"] == "amqp"
    queue = inspect(node, "active_queues")[0]
    assert queue["name"] == q and queue["no_ack"] is False and queue["exchange"]["type"] == "direct"
    assert "maestro.echo" in inspect(node, "registered")
    assert inspect(node, "active") == [] and inspect(node, "reserved") == []
    assert inspect(node, "scheduled") == [] and inspect(node, "revoked") == []
    assert inspect(node, "query_task", r.id) == {}
    assert inspect(node, "clock")["clock"] > 0
    conf = inspect(node, "conf")
    assert conf["worker_concurrency"] == 64 and "guest:***@" in conf["broker_url"]
    assert "maestro-worker" in inspect(node, "report")["ok"]
    # A long task is active, a second one (one slot) reserved, and query_task says which.
    long_q, _, slow = started(names, workers, "-c", "1", index=1, queues=[names.queue("slow")])
    first = celery_app.send_task("maestro.sleep", args=[30], queue=long_q)
    second = celery_app.send_task("maestro.echo", args=["later"], queue=long_q)
    wait_for(lambda: [t["id"] for t in inspect(slow, "active")] == [first.id], 15,
             interval=0.3, what="the sleep active")
    wait_for(lambda: [t["id"] for t in inspect(slow, "reserved")] == [second.id], 15,
             interval=0.3, what="the echo reserved")
    states = inspect(slow, "query_task", first.id, second.id)
    assert states[first.id][0] == "active" and states[second.id][0] == "reserved"
    assert states[first.id][1]["args"] == [30]
    assert control(slow, "terminate", "SIGTERM", first.id)["ok"] == f"terminate: {first.id}"
    assert second.get(timeout=30) == [["later"], {}]


def test_control_commands_change_the_running_worker(names, workers, celery_app):
    q, w, node = started(names, workers)
    assert control(node, "rate_limit", "maestro.echo", "2/s") == {
        "ok": "new rate limit set successfully"}
    assert "maestro.echo [rate_limit=2/s]" in inspect(node, "registered")
    started_at = time.monotonic()
    results = [celery_app.send_task("maestro.echo", args=[i], queue=q) for i in range(5)]
    assert [r.get(timeout=30)[0][0] for r in results] == list(range(5))
    assert time.monotonic() - started_at >= 1.9, "five starts at 2/s take two seconds"
    assert control(node, "rate_limit", "maestro.echo", "0") == {
        "ok": "rate limit disabled successfully"}
    assert control(node, "rate_limit", "no.such.task", "1/s") == {"error": "unknown task"}
    assert control(node, "time_limit", "maestro.sleep", "0.5", "1") == {
        "ok": "time limits set successfully"}
    with pytest.raises(Exception, match="TimeLimitExceeded|1.0"):
        celery_app.send_task("maestro.sleep", args=[10], queue=q).get(timeout=30)
    assert control(node, "pool_grow", "3") == {"ok": "pool will grow"}
    assert inspect(node, "stats")["pool"]["max-concurrency"] == 67
    assert control(node, "pool_shrink", "7") == {"ok": "pool will shrink"}
    assert inspect(node, "stats")["pool"]["max-concurrency"] == 60
    assert control(node, "autoscale", "4", "1") == {"error": "ValueError('Autoscale not enabled')"}
    assert control(node, "pool_restart") == {"error": "ValueError('Pool restarts not enabled')"}
    extra = names.queue("extra")
    assert control(node, "add_consumer", extra) == {"ok": f"add consumer {extra}"}
    wait_for(lambda: extra in [x["name"] for x in inspect(node, "active_queues")], 15,
             interval=0.3, what="the new queue consumed")
    assert celery_app.send_task("maestro.echo", args=["new"], queue=extra).get(timeout=30) == [
        ["new"], {}]
    assert control(node, "cancel_consumer", extra) == {"ok": f"no longer consuming from {extra}"}
    wait_for(lambda: extra not in [x["name"] for x in inspect(node, "active_queues")], 15,
             interval=0.3, what="the queue no longer consumed")
    assert control(node, "election", "id1", "topic") is None
    assert control(node, "heartbeat") is None
    # Celery's shutdown sends no reply (the command line says no node replied, as it does for
    # a Python worker), and the worker stops.
    out = subprocess.run([sys.executable, "-m", "celery", "-b", BROKER_URL, "control", "shutdown",
                          "-d", node, "-t", "2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 69 and "No nodes replied" in out.stderr, out.stderr
    assert w.proc.wait(timeout=40) == 0, "remote shutdown drains and exits 0"


def test_terminate_stops_a_running_task_and_frees_its_slot(names, workers, celery_app):
    q, w, node = started(names, workers, "-c", "1")
    long = celery_app.send_task("maestro.sleep", args=[300], queue=q)
    wait_for(lambda: inspect(node, "active"), 15, interval=0.3, what="the sleep running")
    t0 = time.monotonic()
    assert control(node, "terminate", "SIGTERM", long.id) == {"ok": f"terminate: {long.id}"}
    with pytest.raises(Exception) as e:
        long.get(timeout=30)
    assert type(e.value).__name__ == "TaskRevokedError", e.value
    assert long.state == "REVOKED"
    assert celery_app.send_task("maestro.echo", args=["next"], queue=q).get(timeout=30) == [
        ["next"], {}], "the one slot is free again"
    assert time.monotonic() - t0 < 20
    assert long.id in inspect(node, "revoked")


def test_revocations_survive_a_restart_and_reach_later_workers(names, workers, celery_app, tmp_path):
    statedb = tmp_path / "worker.state"
    q, first, node = started(names, workers, "--statedb", str(statedb))
    revoked = "00000000-0000-4000-8000-%012d" % (int(time.time() * 1000) % 10**12)
    assert control(node, "revoke", revoked) == {"ok": f"tasks {{'{revoked}'}} flagged as revoked"}
    assert first.stop() == 0
    assert revoked in json.loads(statedb.read_text())["revoked"]
    # Restarted with its state file: the id is still revoked, though nobody said so again.
    q2, again, node2 = started(names, workers, "--statedb", str(statedb), "--without-mingle",
                               index=1)
    r = celery_app.send_task("maestro.echo", args=["no"], queue=q2, task_id=revoked)
    with pytest.raises(Exception) as e:
        r.get(timeout=30)
    assert type(e.value).__name__ == "TaskRevokedError"
    # A worker with no state file learns it from the running one at start (mingle).
    other = "11111111-0000-4000-8000-%012d" % (int(time.time() * 1000) % 10**12)
    control(node2, "revoke", other)
    q3, late, node3 = started(names, workers, index=2)
    assert other in inspect(node3, "revoked") and revoked in inspect(node3, "revoked")


def test_worker_events_by_default_task_events_on_request(names, workers, celery_app):
    conn = pika.BlockingConnection(amqp_params())
    ch = conn.channel()
    ch.exchange_declare("celeryev", "topic", durable=True)
    listen = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(listen, "celeryev", "#")
    q, w, node = started(names, workers)
    seen = []

    def collect():
        while True:
            method, _, body = ch.basic_get(listen, auto_ack=True)
            if method is None:
                return seen
            events = json.loads(body)
            for ev in events if isinstance(events, list) else [events]:
                if ev.get("hostname") == node:
                    seen.append(ev["type"])

    wait_for(lambda: "worker-heartbeat" in collect(), 15, interval=0.5, what="a heartbeat")
    assert "worker-online" in seen, "worker events without -E, as Celery sends them"
    assert celery_app.send_task("maestro.echo", args=[1], queue=q).get(timeout=30)
    time.sleep(1)
    assert not [t for t in collect() if t.startswith("task-")], "no task events without -E"
    assert control(node, "enable_events") == {"ok": "task events enabled"}
    assert celery_app.send_task("maestro.echo", args=[2], queue=q).get(timeout=30)
    wait_for(lambda: "task-succeeded" in collect(), 15, interval=0.3, what="task events")
    assert "task-received" in seen and "task-started" in seen
    assert control(node, "disable_events") == {"ok": "task events disabled"}
    conn.close()
    # Without heartbeats a worker sends no worker events.
    quiet_q, quiet, quiet_node = started(names, workers, "--without-heartbeat", index=1)
    assert inspect(quiet_node, "ping") == {"ok": "pong"}


def http(method, url, data=None):
    body = urllib.parse.urlencode(data).encode() if data else None
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError as e:
        return 0, str(e)


FLOWER_APP = """
from celery import Celery
app = Celery("flowerapp")

# Flower acts on the task names its app knows, as for Python workers: these stand for the
# Rust worker's tasks (their bodies never run here).
@app.task(name="maestro.echo")
def echo(*args, **kwargs):
    return [args, kwargs]

@app.task(name="maestro.sleep")
def sleep(seconds):
    return seconds
"""


@pytest.fixture
def flower(names, amqp, tmp_path):
    (tmp_path / "flowerapp.py").write_text(FLOWER_APP)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(f"/tmp/flower-{names.run}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "flowerapp", "-b", BROKER_URL, "flower",
         f"--port={port}", "--address=127.0.0.1", "--purge_offline_workers=60"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"})
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http("GET", f"{base}/healthcheck")[0] == 200, 30, interval=0.5,
             what="Flower answering")
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    os.unlink(log.name)


def test_flower_lists_shows_and_controls_these_workers(names, workers, celery_app, flower):
    q, w, node = started(names, workers, "-E")
    r = celery_app.send_task("maestro.echo", args=["flower"], queue=q)
    assert r.get(timeout=30)

    def listed():
        status, body = http("GET", f"{flower}/api/workers?refresh=1")
        return status == 200 and node in json.loads(body) and json.loads(body)[node]

    info = wait_for(listed, 30, interval=1, what="Flower listing the worker")
    assert info["stats"]["pool"]["max-concurrency"] == 64
    assert info["active_queues"][0]["name"] == q and info["registered"]
    status, page = http("GET", f"{flower}/worker/{node}")
    assert status == 200 and q in page, "the worker page renders with every tab"
    wait_for(lambda: r.id in json.loads(http("GET", f"{flower}/api/tasks")[1]), 30,
             interval=1, what="the task from events")
    status, body = http("GET", f"{flower}/api/task/info/{r.id}")
    assert status == 200 and json.loads(body)["state"] == "SUCCESS"
    for page in ("/", "/workers", "/tasks", f"/task/{r.id}"):
        assert http("GET", f"{flower}{page}")[0] == 200, page
    # Its actions.
    assert http("POST", f"{flower}/api/worker/pool/grow/{node}?n=2")[0] == 200
    assert inspect(node, "stats")["pool"]["max-concurrency"] == 66
    status, body = http("POST", f"{flower}/api/worker/pool/autoscale/{node}?min=1&max=4")
    assert status == 403 and "Autoscale not enabled" in body
    assert http("POST", f"{flower}/api/task/rate-limit/maestro.echo",
                {"workername": node, "ratelimit": "10/m"})[0] == 200
    assert "maestro.echo [rate_limit=10/m]" in inspect(node, "registered")
    long = celery_app.send_task("maestro.sleep", args=[300], queue=q)
    wait_for(lambda: inspect(node, "active"), 15, interval=0.3, what="the sleep running")
    assert http("POST", f"{flower}/api/task/revoke/{long.id}?terminate=true")[0] == 200
    with pytest.raises(Exception) as e:
        long.get(timeout=30)
    assert long.state == "REVOKED", repr(e.value) + w.log()[-6000:]
    assert http("POST", f"{flower}/api/worker/shutdown/{node}")[0] == 200
    assert w.proc.wait(timeout=40) == 0
