"""End to end: the real maestro-api binary in front of RabbitMQ, a real maestro-worker and MongoDB.

- enqueue through the API, the worker runs the task, the API reads its result back;
- the broker away mid-test (a TCP proxy of the test's own between the API and RabbitMQ is cut):
  503 while cut, 202 again after the proxy is restored, and every 202'd task is on the queue;
- bad configuration exits 2 naming the flag and variable;
- a schemathesis fuzz pass of /openapi.json finds no 5xx.

Each test starts the API on a free port with routes to its own queues and its own database,
and stops it (and the worker, the proxy) afterwards; the fixtures delete the queues and db.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, backend_url, wait_for, MONGODB_URI

API_BIN = os.environ.get("MAESTRO_API_BIN", str(ROOT / "target" / "debug" / "maestro-api"))
SECRET = "e2e-secret"
NOAUTH = "e2e-noauth"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(secret=SECRET, noauth=NOAUTH, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"noauth": noauth}).encode())
    signing = f"{header}.{claims}".encode()
    if alg == "none":
        return f"{header}.{claims}."
    sig = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(sig)}"


AUTH = {"Authorization": f"JWT {token()}"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """One maestro-api process."""

    def __init__(self, tmp_path, args, index=0, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"api-{index}.log"
        extra = env or {}
        env = dict(os.environ)
        env.update({
            "MAESTRO_SECRETJWT_PRIVATE": SECRET,
            "MAESTRO_NOAUTH": NOAUTH,
            "MAESTRO_HOST": "127.0.0.1",
            "MAESTRO_PORT": str(self.port),
        })
        env.update(extra)
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([API_BIN, *args], stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for(lambda: self._up() or self.proc.poll() is not None, 30, what="api up")
        assert self.proc.poll() is None, f"api exited early:\n{self.log()}"

    def _up(self):
        try:
            return self.request("GET", "/healthz", auth=False)[0] == 200
        except OSError:
            return False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def request(self, method, path, body=None, auth=True, headers=None, timeout=15):
        data = None if body is None else json.dumps(body).encode()
        h = dict(AUTH) if auth else {}
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()


@pytest.fixture
def apis(tmp_path):
    started = []

    def start(args, env=None):
        a = Api(tmp_path, args, index=len(started), env=env)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


class Proxy:
    """A TCP proxy to RabbitMQ that the test can cut (listener closed, connections aborted)
    and restore, so the broker goes away for the API without stopping the machine's RabbitMQ."""

    def __init__(self, upstream=("127.0.0.1", 5672)):
        self.upstream = upstream
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.transports = set()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    async def _handle(self, reader, writer):
        try:
            ur, uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.transports.update({writer.transport, uw.transport})
        await asyncio.gather(self._pipe(reader, uw), self._pipe(ur, writer))
        self.transports.discard(writer.transport)
        self.transports.discard(uw.transport)

    async def _listen(self):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _cut(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        for t in list(self.transports):
            t.abort()
        self.transports.clear()

    def start(self):
        self._run(self._listen())

    def cut(self):
        self._run(self._cut())

    def close(self):
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxy():
    p = Proxy()
    p.start()
    yield p
    p.close()


def message_ids(amqp, queue):
    return [props.headers["id"] for _, props, _ in amqp.get_all(queue, limit=10000)]


def test_enqueue_through_the_api_runs_on_a_worker_and_reads_the_result(
        names, amqp, mongo, workers, apis):
    q = names.queue("api")
    backend = backend_url(mongo)
    workers([q], args=["--result-backend", backend])
    api = apis(["--routes", f"maestro.echo={q}", "--result-backend", backend,
                "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name])
    status, body = api.request("POST", "/tasks/maestro.echo",
                               {"args": [1, "a"], "kwargs": {"k": {"n": 2}}},
                               headers={"traceparent":
                                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    assert status == 202, body
    assert body["queue"] == q
    task_id = body["task_id"]

    def done():
        s, b = api.request("GET", f"/tasks/{task_id}")
        assert s == 200, b
        return b if b["state"] == "SUCCESS" else None

    state = wait_for(done, 30, interval=0.2, what="SUCCESS via GET /tasks")
    assert state["result"] == [[1, "a"], {"k": {"n": 2}}]
    assert mongo["celery_taskmeta"].find_one({"_id": task_id})["status"] == "SUCCESS"
    # Unknown ids are PENDING; forged tokens are refused.
    assert api.request("GET", "/tasks/no-such-id")[1]["state"] == "PENDING"
    s, b = api.request("GET", f"/tasks/{task_id}", auth=False,
                       headers={"Authorization": f"JWT {token(alg='none')}"})
    assert s == 401 and b["error"] == "unauthorized"
    s, b = api.request("GET", f"/tasks/{task_id}", auth=False,
                       headers={"Authorization": f"JWT {token(secret='guess')}"})
    assert s == 401
    s, b = api.request("GET", "/readyz", auth=False)
    assert s == 200, b


def test_task_sent_events_announce_what_the_api_enqueues_when_asked(names, amqp, apis):
    q, events = names.queue("sent"), names.queue("events")
    ch = amqp._fresh()
    ch.exchange_declare("celeryev", "topic", durable=True)
    ch.queue_declare(events, auto_delete=True)
    ch.queue_bind(events, "celeryev", "task.sent")
    quiet = apis(["--routes", f"maestro.echo={q}", "--enable-diagnostics", "true"])
    assert quiet.request("POST", "/tasks/maestro.echo", {"args": [0], "kwargs": {}})[0] == 202
    api = apis(["--routes", f"maestro.echo={q}", "--enable-diagnostics", "true"],
               env={"MAESTRO_TASK_SENT_EVENTS": "true"})
    status, body = api.request("POST", "/tasks/maestro.echo", {"args": [1, "a"], "kwargs": {}})
    assert status == 202, body
    got = wait_for(lambda: amqp.get_all(events), 10, interval=0.1, what="the task-sent event")
    assert len(got) == 1, "only the API asked to announces its tasks"
    method, props, raw = got[0]
    assert method.routing_key == "task.sent" and props.delivery_mode == 1
    event = json.loads(raw)
    assert event["type"] == "task-sent" and event["uuid"] == body["task_id"]
    assert event["name"] == "maestro.echo" and event["queue"] == q
    assert event["routing_key"] == q and event["hostname"].startswith("maestro-api@")
    assert event["retries"] == 0 and isinstance(event["clock"], int)
    assert props.headers["hostname"] == event["hostname"]
    assert amqp.ready(q) == 2, "both tasks enqueued"


def test_broker_cut_mid_test_gives_503_then_recovers_and_loses_nothing(
        names, amqp, proxy, apis):
    q = names.queue("cut")
    api = apis(["--broker", f"amqp://guest:guest@127.0.0.1:{proxy.port}//",
                "--routes", f"maestro.noop={q}", "--publish-timeout", "2",
                "--ready-timeout", "1"])
    accepted = []

    def send(i):
        s, b = api.request("POST", "/tasks/maestro.noop", {"args": [i], "kwargs": {}})
        if s == 202:
            accepted.append(b["task_id"])
        return s, b

    for i in range(20):
        s, b = send(i)
        assert s == 202, b
    proxy.cut()
    refused = 0
    for i in range(10):
        s, b = send(100 + i)
        assert s == 503, b
        assert b["error"] == "broker_unavailable" and b["reason"], b
        refused += 1
    assert api.request("GET", "/readyz", auth=False)[0] == 503
    proxy.start()
    # The API reconnects by itself on the next request.
    wait_for(lambda: send(1000)[0] == 202, 20, interval=0.2, what="202 after restore")
    for i in range(20):
        s, b = send(2000 + i)
        assert s == 202, b
    assert refused == 10
    # Every 202'd task is on the queue, and nothing else is.
    on_queue = message_ids(amqp, q)
    assert sorted(on_queue) == sorted(accepted)
    assert len(accepted) >= 41


def test_slow_clients_and_connection_floods_cannot_hold_the_api(apis):
    # The real server loop: a client that trickles its headers (slowloris) or sits idle on a
    # keep-alive connection is cut off after the header-read timeout, and connections over the
    # cap wait in the backlog instead of taking the process's file descriptors.
    import socket
    api = apis(["--header-read-timeout", "1", "--max-connections", "3"])

    def connect():
        c = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        return c

    slow = connect()
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    begin = time.monotonic()
    slow.settimeout(5)
    try:
        rest = slow.recv(4096)
    except OSError:
        rest = b""
    took = time.monotonic() - begin
    # Closed (or answered 408 and closed) after about a second, not held open.
    assert took < 4, took
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest
    slow.close()

    held = [connect() for _ in range(3)]
    for c in held:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200"), "kept alive after one answer"
    # The cap is reached: a fourth connection is accepted by the kernel but not served ...
    extra = connect()
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    extra.settimeout(0.5)
    with pytest.raises(socket.timeout):
        extra.recv(4096)
    # ... until the idle ones are cut off by the timeout; then it is answered.
    extra.settimeout(5)
    assert extra.recv(4096).startswith(b"HTTP/1.1 200")
    for c in held + [extra]:
        c.close()
    assert api.request("GET", "/healthz", auth=False)[0] == 200


def test_bad_configuration_exits_2_naming_flag_and_variable(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MAESTRO_") and k != "CELERY_BROKER_URL"}
    r = subprocess.run([API_BIN], env={**env, "MAESTRO_NOAUTH": "x"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "MAESTRO_SECRETJWT_PRIVATE" in r.stderr and "--secret-jwt-private" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([API_BIN, "--routes", "a=amq.bad"],
                       env={**env, "MAESTRO_NOAUTH": "x", "MAESTRO_SECRETJWT_PRIVATE": "s"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "MAESTRO_ROUTES" in r.stderr


def test_schemathesis_finds_no_server_error(names, amqp, mongo, apis, tmp_path):
    queues = {t: names.queue(t.split(".")[-1]) for t in [
        "maestro.discovery.scan", "maestro.report.general", "maestro.report.pivot",
        "maestro.aggregation", "maestro.analytics.graph", "maestro.webhook", "maestro.notify",
        "maestro.noop",
        "maestro.echo", "maestro.sleep", "maestro.fail"]}
    routes = ",".join(f"{t}={q}" for t, q in queues.items())
    api = apis(["--routes", routes, "--result-backend", backend_url(mongo),
                "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name])
    st = pathlib.Path(os.environ.get("MAESTRO_TEST_PYTHON", "python")).with_name("st")
    if not st.exists():
        pytest.fail(f"schemathesis is not installed next to the test python ({st}); "
                    "scripts/test.sh installs it")
    r = subprocess.run(
        [str(st), "run", f"{api.base}/openapi.json",
         "--checks", "not_a_server_error",
         "-H", f"Authorization: JWT {token()}",
         "--max-examples", os.environ.get("MAESTRO_SCHEMATHESIS_EXAMPLES", "40"),
         "--seed", "1", "--request-timeout", "10", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:] + api.log()[-3000:]
    m = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert m and int(m.group(1)) >= 100 and m.group(1) == m.group(2), r.stdout[-3000:]
    # The fuzzing reached the broker: some generated requests were valid and enqueued.
    assert sum(amqp.ready(q) or 0 for q in queues.values()) > 0
