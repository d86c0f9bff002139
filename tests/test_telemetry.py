"""OpenTelemetry trace export by OTLP/HTTP, end to end, into a collector of the test's own.

- maestro-api and maestro-worker export to a tiny OTLP/HTTP receiver (JSON encoding) started
  here on a free port: the API's enqueue span continues the caller's trace, the message on the
  queue names exactly that span as parent, and the worker's run span is its child, in the same
  trace; each process reports its own service.name. Both flush at SIGTERM (the batch delay is
  set far beyond the test, so nothing arrives before the processes stop).
- a bad OTLP setting makes each binary exit 2 naming the variable, before touching anything.

Queues and the database are the test's own (conftest's fixtures delete them); the receiver,
the API and the worker are stopped by their fixtures.
"""
import json
import os
import pathlib
import signal
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import chain

from conftest import WORKER_BIN, backend_url, wait_for, MONGODB_URI
from test_api import API_BIN, apis  # noqa: F401  (the fixture)

BEAT_BIN = os.environ.get("MAESTRO_BEAT_BIN", str(pathlib.Path(WORKER_BIN).with_name("maestro-beat")))


class Collector:
    """Accepts OTLP/HTTP JSON trace exports on POST /v1/traces; keeps every span with its
    resource's service.name."""

    def __init__(self):
        self.spans = []
        self.posts = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector._receive(self.path, self.headers.get("Content-Type", ""), body)
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _receive(self, path, content_type, body):
        with self.lock:
            self.posts.append((path, content_type))
        if path != "/v1/traces" or not content_type.startswith("application/json"):
            return
        doc = json.loads(body)
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            service = attrs.get("service.name", {}).get("stringValue")
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    with self.lock:
                        self.spans.append({**span, "service": service})

    def find(self, **want):
        with self.lock:
            return [s for s in self.spans if all(s.get(k) == v for k, v in want.items())]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def otlp_env(collector):
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        # Nothing is exported on the timer during the test: what arrives was flushed at exit.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_SERVICE_NAME": "",
        "OTEL_SDK_DISABLED": "",
        "OTEL_TRACES_SAMPLER": "",
    }


def test_api_and_worker_spans_link_across_the_queue(names, amqp, mongo, workers, apis,
                                                     collector):
    q = names.queue("otel")
    backend = backend_url(mongo)
    env = otlp_env(collector)
    api = apis(["--routes", f"maestro.echo={q}", "--result-backend", backend,
                "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name], env=env)
    trace_id = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    status, body = api.request("POST", "/tasks/maestro.echo", {"args": ["otel"], "kwargs": {}},
                               headers={"traceparent": f"00-{trace_id}-{caller_span}-01",
                                        "tracestate": "vendor=abc"})
    assert status == 202, body
    task_id = body["task_id"]

    # The message, before any worker takes it: its traceparent names the API's span.
    ch = amqp._fresh()
    method, props, _ = ch.basic_get(q, auto_ack=False)
    assert method is not None, "the task message is on the queue"
    traceparent = props.headers["traceparent"]
    ch.basic_nack(method.delivery_tag, requeue=True)
    version, msg_trace, api_span_id, flags = traceparent.split("-")
    assert (version, msg_trace, flags) == ("00", trace_id, "01"), traceparent
    assert api_span_id != caller_span
    assert props.headers.get("tracestate") == "vendor=abc"

    w = workers([q], args=["--result-backend", backend], env=env)

    def done():
        s, b = api.request("GET", f"/tasks/{task_id}")
        assert s == 200, b
        return b if b["state"] == "SUCCESS" else None

    assert wait_for(done, 30, interval=0.2, what="SUCCESS")["result"] == [["otel"], {}]

    # Both flush at SIGTERM.
    assert w.stop() == 0, w.log()[-3000:]
    api.stop()
    wait_for(lambda: collector.find(service="maestro-api")
             and collector.find(service="maestro-worker"), 15, interval=0.1,
             what=f"spans of both services; posts: {collector.posts}")

    api_spans = collector.find(service="maestro-api", traceId=trace_id)
    assert len(api_spans) == 1, collector.spans
    a = api_spans[0]
    assert a["spanId"] == api_span_id
    assert a["parentSpanId"] == caller_span
    assert a["name"] == "apply_async/maestro.echo"
    assert a["kind"] in (4, "SPAN_KIND_PRODUCER"), a

    worker_spans = collector.find(service="maestro-worker", traceId=trace_id)
    assert len(worker_spans) == 1, collector.spans
    r = worker_spans[0]
    assert r["parentSpanId"] == api_span_id
    assert r["name"] == "run/maestro.echo"
    assert r["kind"] in (5, "SPAN_KIND_CONSUMER"), r
    attrs = {x["key"]: x["value"] for x in r.get("attributes", [])}
    assert attrs["id"]["stringValue"] == task_id
    assert attrs["state"]["stringValue"] == "SUCCESS"


def test_a_chain_is_one_trace_each_step_the_child_of_the_one_before(names, mongo_app, mongo,
                                                                     workers, collector):
    q = names.queue("otelchain")
    mongo_app.conf.task_default_queue = q
    w = workers([q], args=["--result-backend", backend_url(mongo), "--default-queue", q],
                env=otlp_env(collector))
    trace_id = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    c = chain(mongo_app.signature("maestro.echo", args=[1], queue=q),
              mongo_app.signature("maestro.echo", args=["last"], queue=q))
    res = c.apply_async(headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert res.get(timeout=30) == [[[[1], {}], "last"], {}]
    assert w.stop() == 0, w.log()[-3000:]
    wait_for(lambda: len(collector.find(traceId=trace_id)) >= 2, 15, interval=0.1,
             what=f"two run spans; posts: {collector.posts}")
    runs = collector.find(service="maestro-worker", traceId=trace_id, name="run/maestro.echo")
    assert len(runs) == 2, collector.spans
    first = next(r for r in runs if r["parentSpanId"] == caller_span)
    second = next(r for r in runs if r is not first)
    assert second["parentSpanId"] == first["spanId"]


def test_a_beat_fire_is_the_root_of_the_runs_trace(names, amqp, mongo, workers, collector,
                                                   tmp_path):
    q = names.queue("otelbeat")
    env = otlp_env(collector)
    w = workers([q], args=["--result-backend", backend_url(mongo)], env=env)
    mongo["schedulers"].insert_one({
        "_id": "otel-every-second", "name": "otel", "enabled": True, "period_type": "interval",
        "interval": {"every": 1, "period": "seconds"}, "task": "maestro.echo",
        "args": ["beat"], "queue": q, "run_immediately": True})
    log = open(tmp_path / "beat.log", "w")
    beat = subprocess.Popen(
        [BEAT_BIN, "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
         "--lease-name", f"t{names.run}", "--default-queue", q, "--metrics-addr", "127.0.0.1:0",
         "-n", f"beat-{names.run}"],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: mongo["celery_taskmeta"].find_one({"status": "SUCCESS"}), 30,
                 interval=0.2, what="a fired task's SUCCESS")
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait()
        log.close()
    assert w.stop() == 0, w.log()[-3000:]
    wait_for(lambda: collector.find(service="maestro-beat")
             and collector.find(service="maestro-worker"), 15, interval=0.1,
             what=f"beat and worker spans; posts: {collector.posts}")
    fires = collector.find(service="maestro-beat", name="apply_async/maestro.echo")
    runs = {r["parentSpanId"]: r for r in collector.find(service="maestro-worker")}
    linked = [f for f in fires if f["spanId"] in runs]
    assert linked, (fires, runs)
    f = linked[0]
    assert not f.get("parentSpanId"), f
    assert runs[f["spanId"]]["traceId"] == f["traceId"]


@pytest.mark.parametrize("var,value", [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ("OTEL_TRACES_SAMPLER", "sometimes"),
])
def test_bad_otlp_configuration_exits_2_naming_the_variable(var, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", var: value})
    for argv in ([API_BIN], [WORKER_BIN, "-Q", "unused"], [BEAT_BIN]):
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (argv, r.stderr)
        assert f": {var}: " in r.stderr, (argv, r.stderr)
        assert "panicked" not in r.stderr
