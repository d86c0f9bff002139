"""End-to-end fixtures: real RabbitMQ, the real maestro-worker binary, Python Celery 5.7.

Every test gets its own run id; queue, exchange, delay-prefix and dead-letter names carry it,
and teardown deletes exactly those (and the rpc reply queue of the test's Celery app), then
stops every process the test started.
"""
import json
import os
import pathlib
import signal
import subprocess
import time
import uuid

import pika
import pytest
from celery import Celery
from http.server import BaseHTTPRequestHandler

ROOT = pathlib.Path(__file__).resolve().parent.parent


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet request handler for the tests' stand-ins of public clouds and Maestro peers:
    `answer` sends a JSON body (with any extra headers) and its length."""
    content_type = "application/json"

    def log_message(self, *_):
        pass

    def answer(self, status, body, headers=()):
        raw = json.dumps(body).encode()
        self.send_response(status)
        for k, v in [("Content-Type", self.content_type), *headers]:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
WORKER_BIN = os.environ.get("MAESTRO_WORKER_BIN", str(ROOT / "target" / "debug" / "maestro-worker"))
DELAY_LEVELS = 28
# The suite drives the worker, the API and beat with the diagnostic tasks (maestro.echo,
# maestro.record, ...), which production deployments leave off; every process the tests start
# inherits this (tests of the off state set it to false themselves).
os.environ.setdefault("MAESTRO_ENABLE_DIAGNOSTICS", "true")
# The suite's webhook receivers listen on loopback, which workers refuse by default.
os.environ.setdefault("MAESTRO_EGRESS_ALLOW", "127.0.0.1")


class Names:
    """Every broker name one test may create."""

    def __init__(self):
        self.run = uuid.uuid4().hex[:10]
        self.delay_prefix = f"t{self.run}_delayed"
        self.dead_exchange = f"t{self.run}.dead"
        self.dead_queue = f"t{self.run}.dead"
        self.queues = []

    def queue(self, label="q"):
        name = f"t{self.run}.{label}"
        if name not in self.queues:
            self.queues.append(name)
        return name

    def delay_queues(self):
        return [f"{self.delay_prefix}_{level}" for level in range(DELAY_LEVELS)]


def amqp_params():
    """No heartbeats: a blocking connection left idle through a long test would otherwise be
    dropped by the broker."""
    params = pika.URLParameters(AMQP_URL)
    params.heartbeat = 0
    return params


class Amqp:
    """A pika connection for inspecting and cleaning up the broker."""

    def __init__(self):
        self.conn = pika.BlockingConnection(amqp_params())
        self.ch = self.conn.channel()

    def _fresh(self):
        if self.conn.is_closed:
            self.conn = pika.BlockingConnection(amqp_params())
            self.ch = self.conn.channel()
        elif self.ch.is_closed:
            self.ch = self.conn.channel()
        return self.ch

    def _reconnect(self):
        """A new connection: a long test leaves this one idle past the broker's heartbeat."""
        self.close()
        self.conn = pika.BlockingConnection(amqp_params())
        self.ch = self.conn.channel()

    def ready(self, queue):
        """Messages ready in `queue`, or None when it does not exist."""
        try:
            return self._fresh().queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return None

    def consumers(self, queue):
        try:
            return self._fresh().queue_declare(queue, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return None

    def exists_exchange(self, name):
        try:
            self._fresh().exchange_declare(name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False

    def get_all(self, queue, limit=1000):
        out = []
        ch = self._fresh()
        for _ in range(limit):
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            out.append((method, props, body))
        return out

    def publish(self, queue, body, props):
        self._fresh().basic_publish("", queue, body, props)

    def delete(self, names):
        try:
            self._fresh().connection.process_data_events(0)
        except pika.exceptions.AMQPError:
            self._reconnect()
        for q in names.queues + names.delay_queues() + [names.dead_queue]:
            self._fresh().queue_delete(q)
        exchanges = names.queues + names.delay_queues() + [
            f"{names.delay_prefix}_delivery", names.dead_exchange]
        for x in exchanges:
            self._fresh().exchange_delete(x)

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """One maestro-worker process."""

    def __init__(self, names, tmp_path, queues, args=(), env=None, index=0, binary=None):
        self.names = names
        self.log_path = tmp_path / f"worker-{index}.log"
        self.node = f"w{index}-{names.run}@%h"
        backend = [] if "--result-backend" in args else ["--result-backend", "rpc://"]
        argv = [binary or WORKER_BIN, "-Q", ",".join(queues), "-n", self.node,
                "--delay-prefix", names.delay_prefix,
                "--dead-letter-exchange", names.dead_exchange,
                "--dead-letter-queue", names.dead_queue, *backend, *args]
        full_env = dict(os.environ)
        # Tests run several workers at once: each gets its metrics endpoint on a free port.
        full_env.setdefault("MAESTRO_WORKER_METRICS_ADDR", "127.0.0.1:0")
        full_env.update(env or {})
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=full_env, start_new_session=True)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=30, count=1):
        wait_for(lambda: self.log().count("worker_ready") >= count or self.proc.poll() is not None,
                 timeout, what="worker_ready")
        assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log_file.close()


@pytest.fixture
def names():
    return Names()


@pytest.fixture
def amqp(names):
    a = Amqp()
    yield a
    a.delete(names)
    a.close()


@pytest.fixture
def workers(names, tmp_path, amqp):
    started = []

    def start(queues, args=(), env=None, ready=True, binary=None):
        w = Worker(names, tmp_path, queues, args, env, index=len(started), binary=binary)
        started.append(w)
        if ready:
            w.wait_ready()
        return w

    yield start
    for w in started:
        w.kill()


MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")


@pytest.fixture
def mongo(names):
    """A database of this test's own on the MongoDB server (dropped afterwards)."""
    import pymongo
    client = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
    db = client[f"t{names.run}"]
    yield db
    client.drop_database(db.name)
    client.close()


def backend_url(db):
    base = MONGODB_URI.rstrip("/")
    if "?" in base:
        head, query = base.split("?", 1)
        return f"{head.rstrip('/')}/{db.name}?{query}"
    return f"{base}/{db.name}"


@pytest.fixture
def mongo_app(names, amqp, mongo):
    """A Celery client whose result backend is the test's MongoDB database."""
    app = Celery(f"interop-{names.run}", broker=BROKER_URL, backend=backend_url(mongo))
    app.conf.update(broker_connection_retry_on_startup=True)
    yield app
    app.close()


@pytest.fixture
def celery_app(names, amqp):
    app = Celery(f"interop-{names.run}", broker=BROKER_URL, backend="rpc://")
    app.conf.update(broker_connection_retry_on_startup=True, result_expires=None)
    yield app
    try:
        reply_queue = app.backend.binding.name
    except Exception:
        reply_queue = None
    app.close()
    if reply_queue:
        amqp._fresh().queue_delete(reply_queue)
