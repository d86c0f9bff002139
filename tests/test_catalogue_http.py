"""maestro.webhook and maestro.notify end to end: Python Celery sends, the maestro-worker binary
delivers to plain local HTTP servers (http.server in threads of this test), results and the
webhook attempt records land in the test's own MongoDB database."""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import MONGODB_URI, backend_url, wait_for

SECRET = "hook-secret"


class Recorder:
    """A local HTTP server that records every request and answers with scripted statuses
    (200 once the script runs out)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.seen = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with recorder.lock:
                    recorder.seen.append({"method": self.command, "path": self.path,
                                          "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                    status = recorder.statuses.pop(0) if recorder.statuses else 200
                reply = b'{"result":{}}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        host, port = self.server.server_address
        return f"http://{host}:{port}"

    def requests(self):
        with self.lock:
            return list(self.seen)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def http_servers():
    started = []

    def start(statuses=()):
        r = Recorder(statuses)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def start_worker(workers, queue, mongo, *extra):
    return workers([queue], args=["--result-backend", backend_url(mongo),
                                  "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
                                  "--reports-database", f"{mongo.name}-reports",
                                  "--http-timeout", "2", *extra])


def test_webhook_is_signed_retried_after_500_and_recorded(names, workers, mongo, mongo_app,
                                                          http_servers):
    hook = http_servers([500])
    q = names.queue("webhook")
    w = start_worker(workers, q, mongo, "--webhook-secret", SECRET)
    payload = {"event": "done", "big": 2**70, "text": "ünï"}
    r = mongo_app.send_task("maestro.webhook", queue=q, kwargs={
        "url": f"{hook.url}/hook?token=abc", "method": "POST", "payload": payload,
        "headers": {"X-Token": "tok"}})
    assert r.get(timeout=60) == {"status": 200, "attempts": 2}

    seen = hook.requests()
    assert len(seen) == 2
    for i, req in enumerate(seen, start=1):
        assert req["method"] == "POST" and req["path"] == "/hook?token=abc"
        assert json.loads(req["body"]) == payload
        expected = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(req["headers"]["x-maestro-signature"], expected)
        assert req["headers"]["x-maestro-delivery"] == r.id
        assert req["headers"]["x-maestro-attempt"] == str(i)
        assert req["headers"]["x-token"] == "tok"
        assert req["headers"]["content-type"] == "application/json"

    records = list(mongo.webhook_attempts.find({"task_id": r.id}).sort("attempt", 1))
    assert [(d["attempt"], d["status"], d["method"]) for d in records] == [
        (1, 500, "POST"), (2, 200, "POST")]
    assert records[0]["url"] == f"{hook.url}/hook"  # the query string is not recorded
    assert all(d["duration_ms"] >= 0 and d["at"] for d in records)
    log = w.log()
    assert "webhook_delivered" in log
    for secret in (SECRET, "tok\"", "token=abc", expected.split("=", 1)[1]):
        assert secret not in log, f"{secret!r} leaked into the worker log"


def test_webhook_credentials_reach_no_stored_result_nor_inspect_active(
        names, workers, mongo, mongo_app, celery_app):
    # A receiver that takes the request and never answers keeps the task active for the
    # worker's HTTP timeout (2 s), long enough to ask `inspect active` about it.
    import socket
    from test_control_events import node_of
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    q = names.queue("webhook")
    start_worker(workers, q, mongo, "--result-extended", "true")
    node = node_of(f"w0-{names.run}@", q, celery_app)
    r = mongo_app.send_task("maestro.webhook", queue=q, kwargs={
        "url": f"http://127.0.0.1:{port}/hook?token=in-the-query",
        "headers": {"Authorization": "Bearer in-a-header"}})
    insp = celery_app.control.inspect(destination=[node], timeout=5)
    active = wait_for(lambda: [t for t in (insp.active() or {}).get(node, []) if t["id"] == r.id],
                      15, interval=0.2, what="the webhook listed as active")
    shown = json.dumps(active)
    assert "***" in shown, shown
    for secret in ("Bearer in-a-header", "in-the-query"):
        assert secret not in shown, f"{secret} in inspect active: {shown}"
    wait_for(lambda: mongo.celery_taskmeta.find_one({"_id": r.id, "retries": {"$gte": 0},
                                                     "kwargs": {"$exists": True}}),
             30, what="the stored result")
    doc = mongo.celery_taskmeta.find_one({"_id": r.id})
    stored = json.dumps(doc, default=str)
    assert doc["kwargs"]["headers"] == {"Authorization": "***"}, doc
    for secret in ("Bearer in-a-header", "in-the-query"):
        assert secret not in stored, f"{secret} in the stored result: {stored}"
    silent.close()


def test_webhook_404_is_a_failure_without_retry(names, workers, mongo, mongo_app, http_servers):
    hook = http_servers([404])
    q = names.queue("webhook")
    start_worker(workers, q, mongo)
    r = mongo_app.send_task("maestro.webhook", queue=q,
                            kwargs={"url": f"{hook.url}/gone", "method": "PUT", "payload": [1]})
    with pytest.raises(RuntimeError, match="404"):
        r.get(timeout=30)
    assert r.state == "FAILURE"
    time.sleep(2.5)  # longer than a first retry's delay: none comes
    seen = hook.requests()
    assert len(seen) == 1 and seen[0]["method"] == "PUT"
    assert "x-maestro-signature" not in seen[0]["headers"]  # no secret configured
    assert [d["status"] for d in mongo.webhook_attempts.find({"task_id": r.id})] == [404]


def test_notify_publishes_to_centrifugo_and_audit(names, workers, mongo, mongo_app, http_servers):
    ws = http_servers([502])
    audit = http_servers()
    q = names.queue("notify")
    w = start_worker(workers, q, mongo, "--websocket-uri", ws.url, "--websocket-secret", "ws-key",
                 "--audit-uri", f"{audit.url}/")
    n = mongo_app.send_task("maestro.notify", queue=q, kwargs={
        "channel": "ws", "owner_id": "u1",
        "notify": {"title": "Report", "msg": "Report r1 is ready", "type": "success"},
        "event": {"caller": ["reports"]}})
    a = mongo_app.send_task("maestro.notify", queue=q, kwargs={
        "channel": "audit", "entity": "servers", "entity_id": "5f1c", "method": "PATCH",
        "user": "u1", "body": {"hostname": "web-1"}})
    assert n.get(timeout=60) == {"channel": "maestro-u1", "status": 200, "attempts": 2}
    assert a.get(timeout=30)["status"] == 200

    published = ws.requests()
    assert len(published) == 2
    last = published[-1]
    assert last["method"] == "POST" and last["path"] == "/api"
    assert last["headers"]["authorization"] == "apikey ws-key"
    assert json.loads(last["body"]) == {"method": "publish", "params": {
        "channel": "maestro-u1", "data": {
            "notify": {"title": "Report", "msg": "Report r1 is ready", "type": "success"},
            "event": {"caller": ["reports"]}}}}

    (rec,) = audit.requests()
    assert rec["method"] == "PATCH" and rec["path"] == "/audit/servers/5f1c/u1"
    assert json.loads(rec["body"]) == {"hostname": "web-1"}
    assert "ws-key" not in w.log()


def test_notify_without_a_configured_service_is_skipped(names, workers, mongo, mongo_app):
    q = names.queue("notify")
    w = start_worker(workers, q, mongo)
    kwargs = {"channel": "ws", "owner_id": "u1",
              "notify": {"title": "t", "msg": "m", "type": "info"}, "event": {"caller": []}}
    first = mongo_app.send_task("maestro.notify", queue=q, kwargs=kwargs)
    second = mongo_app.send_task("maestro.notify", queue=q, kwargs=kwargs)
    assert first.get(timeout=30) == {"skipped": "MAESTRO_WEBSOCKET_URI unset"}
    assert second.get(timeout=30) == {"skipped": "MAESTRO_WEBSOCKET_URI unset"}
    wait_for(lambda: "notify_skipped" in w.log(), 5, what="skip logged")
    assert w.log().count("notify_skipped") == 1
