"""The fault suite (issue 7): the fleet's promises under faults, on loopback, bounded in time.

1. Workers SIGKILLed again and again during a 20,000-task run (acks late, results in MongoDB):
   every task succeeds, and none runs again once its success was recorded.
2. MongoDB stopped and restarted mid-run (a SecantusDB server of the test's own): the workers
   keep running, writes retry, every result is there at the end.
3. RabbitMQ stopped and restarted mid-run (a RabbitMQ node of the test's own, its own port and
   data directory): maestro-api answers 202 or 503 and every 202'd task runs; workers and beat
   reconnect by themselves (same processes) and beat fires again.
4. A 3-node RabbitMQ cluster (nodes of the test's own, distinct names and ports) with quorum
   queues: the node the clients talk to and the queues' leader is SIGKILLed under load; the
   API, workers and publishers fail over to the other nodes (`;`-separated broker URLs) and
   every 202'd task runs.
5. Canvas under SIGKILL: chains and chords sent by Python Celery while workers are killed
   again and again: every chain completes, every chord's callback runs, and nothing runs
   again once its success was stored (a follow-up lost between a task's SUCCESS and its
   publish, or a chord marked fired before its callback went out, would hang here).

Side effects are counted with `maestro.record`, which upserts one document per task id
(`runs`, `at`: the time of every run) into the test's database. A task runs at least once;
it can run twice when its worker dies after the side effect and before its result is stored
(acks late, as Celery): the figures say how often. What must never happen is a run after the
SUCCESS was stored (the worker skips ids that already succeeded): no `at` is later than the
result's `date_done`.

Set MAESTRO_CHAOS_FIGURES to a file to collect each test's figures as JSON lines
(scripts/chaos.sh does, and prints them).
"""
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import pika
import pymongo
import pytest

from conftest import MONGODB_URI, ROOT, wait_for
from test_api import Api, apis, free_port  # noqa: F401 (apis is a fixture)

BEAT_BIN = os.environ.get("MAESTRO_BEAT_BIN", str(ROOT / "target" / "debug" / "maestro-beat"))
RABBIT_SBIN = pathlib.Path(os.environ.get("MAESTRO_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))
SECANTUSD = pathlib.Path(sys.executable).parent / "secantusd-py"
TASKS = int(os.environ.get("MAESTRO_CHAOS_TASKS", "20000"))
# Chains (3 steps) and chords (5 members and a callback) in the canvas run.
CANVAS = int(os.environ.get("MAESTRO_CHAOS_CANVAS", "60"))
FIGURES = os.environ.get("MAESTRO_CHAOS_FIGURES")
RECORD = "maestro.record"


def figures(test, **values):
    line = json.dumps({"test": test, **values})
    print(f"\nCHAOS {line}")
    if FIGURES:
        with open(FIGURES, "a") as f:
            f.write(line + "\n")


# --- processes of the test's own -------------------------------------------------------------

class Proc:
    """A process in its own session, logged to a file, killed with its group."""

    def __init__(self, argv, log_path, env=None):
        self.argv, self.log_path, self.env = argv, log_path, env
        self.proc = None
        self.start()

    def start(self):
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log_file.close()

    def term(self, timeout=30):
        """SIGTERM, wait; the exit code (SIGKILL after `timeout`)."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()


class Fleet:
    """Every process one test starts; stopped at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []
        self.count = Counter()

    def add(self, kind, argv, env=None):
        self.count[kind] += 1
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = Proc(argv, self.tmp_path / f"{kind}-{self.count[kind]}.log", full_env)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            p.signal(signal.SIGCONT)
            p.kill()


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    yield f
    f.stop()


def start_worker(workers, queue, broker, backend, mongo_uri, db, extra=()):
    """A maestro-worker (conftest's `workers` fixture) on `queue` at `broker` (one URL or a
    `;` list), results in `backend`, `maestro.record` writing into `db` at `mongo_uri`."""
    return workers([queue], args=["-b", broker, "--result-backend", backend,
                                  "--log-format", "json", *extra],
                   env={"MAESTRO_MONGO_URI": mongo_uri, "MAESTRO_MONGO_DATABASE": db},
                   ready=False)


def alive(worker):
    return worker.proc.poll() is None


class RabbitNode:
    """A RabbitMQ node of the test's own: its name, AMQP and distribution ports, data and log
    directories and Erlang cookie (a HOME of its own), no plugins. The machine's epmd is used."""

    def __init__(self, base, name, cookie):
        self.name = f"{name}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = base / name
        (self.home / "log").mkdir(parents=True)
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "cluster_formation.peer_discovery_backend = classic_config\n")
        cookie_file = self.home / ".erlang.cookie"
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)
        self.env = dict(os.environ)
        self.env.update({
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.home / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_ALLOW_INPUT": "",
        })
        (self.home / "rabbitmq-env.conf").write_text("")
        self.proc = None
        self.log_path = self.home / "server.log"

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def pika_url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self):
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen([str(RABBIT_SBIN / "rabbitmq-server")], env=self.env,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def ctl(self, *args, timeout=120, check=True):
        r = subprocess.run([str(RABBIT_SBIN / "rabbitmqctl"), "-n", self.name, *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} on {self.name}: "
                                 f"{r.stdout}{r.stderr}\n{self.log_path.read_text()[-2000:]}")
        return r

    def wait_up(self, timeout=120):
        self.ctl("wait", str(self.home / "pid"), "--timeout", str(timeout), timeout=timeout + 10)
        self.ctl("await_startup", "--timeout", str(timeout), timeout=timeout + 10)
        wait_for(lambda: port_open(self.port), 30, what=f"{self.name} AMQP port")

    def stop(self):
        """A clean stop (`rabbitmqctl stop`), then the process is waited for."""
        self.ctl("stop", timeout=120, check=False)
        if self.proc:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc:
            self.log_file.close()


def port_open(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def rabbit_nodes(tmp_path, names):
    """Starts RabbitMQ nodes of the test's own; kills them and removes their files after."""
    if not (RABBIT_SBIN / "rabbitmq-server").exists():
        pytest.fail(f"{RABBIT_SBIN}/rabbitmq-server not found (set MAESTRO_RABBITMQ_SBIN)")
    base = pathlib.Path(f"/tmp/maestro-chaos-{names.run}")
    base.mkdir()
    cookie = uuid.uuid4().hex.upper()
    nodes = []

    def start(count):
        new = [RabbitNode(base, f"chaos{len(nodes) + i}-{names.run}", cookie)
               for i in range(count)]
        for n in new:
            n.start()
        for n in new:
            n.wait_up()
        nodes.extend(new)
        return new

    yield start
    for n in nodes:
        n.kill()
    shutil.rmtree(base, ignore_errors=True)


class Secantus:
    """A SecantusDB server of the test's own on a port of its own (stop/start keep the data)."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path / "secantus"
        self.dir.mkdir()
        self.proc = None
        self.uri = f"mongodb://127.0.0.1:{self.port}"

    def start(self):
        self.log_file = open(self.dir / "server.log", "a")
        self.proc = subprocess.Popen(
            [str(SECANTUSD), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", str(self.dir / "data")],
            stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)

        def up():
            try:
                return client.admin.command("ping")
            except pymongo.errors.PyMongoError:
                return None
        wait_for(up, 60, interval=0.2, what="SecantusDB up")
        client.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.log_file.close()


@pytest.fixture
def secantus(tmp_path):
    if not SECANTUSD.exists():
        pytest.fail(f"{SECANTUSD} not found (the test venv installs SecantusDB)")
    s = Secantus(tmp_path)
    s.start()
    yield s
    s.stop()


# --- publishing and checking -----------------------------------------------------------------

def celery_message(task, task_id, args, kwargs):
    """A Celery protocol v2 message as Celery 5.7 publishes it."""
    headers = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": repr(args), "kwargsrepr": repr(kwargs), "origin": "chaos@test",
               "ignore_result": False}
    body = json.dumps([args, kwargs, {"callbacks": None, "errbacks": None, "chain": None,
                                      "chord": None}]).encode()
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                 delivery_mode=2, headers=headers, correlation_id=task_id,
                                 priority=0)
    return body, props


def publish_all(url, queue, messages):
    """Publishes (task id, body, props) with publisher confirms; returns the confirmed ids."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    sent = []
    for task_id, body, props in messages:
        ch.basic_publish("", queue, body, props, mandatory=True)
        sent.append(task_id)
    conn.close()
    return sent


def record_messages(ids, collection, ms):
    for task_id in ids:
        body, props = celery_message(RECORD, task_id, [collection], {"ms": ms})
        yield task_id, body, props


def count(coll, query):
    try:
        return coll.count_documents(query)
    except pymongo.errors.PyMongoError:
        return None


def succeeded(meta):
    try:
        return {d["_id"] for d in meta.find({"status": "SUCCESS"}, {"_id": 1})}
    except pymongo.errors.PyMongoError:
        return set()


# How long a result write may still be on its way to MongoDB when the worker that sent it dies
# (or loses its broker session): the worker dates it before sending, SecantusDB applies it
# later, and meanwhile the redelivered message can be looked up, find nothing, and run again.
IN_FLIGHT_S = 2.0


def utcnow():
    """Wall-clock now, naive UTC, as pymongo returns dates."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def check_outcome(db, ids, faults=()):
    """Every id succeeded and was recorded; a task ran again after its SUCCESS was dated only
    when that write was in flight at a fault (`faults`: naive UTC times of kills and stops)."""
    ids = set(ids)
    # The database is the test's own: read it whole (a 20,000-id $in is slow on SecantusDB).
    meta = {d["_id"]: d for d in db["celery_taskmeta"].find({}, {"status": 1, "date_done": 1})
            if d["_id"] in ids}
    states = Counter(d["status"] for d in meta.values())
    lost = sorted(ids - set(meta))
    failed = [d for d in meta.values() if d["status"] != "SUCCESS"]
    assert not lost, f"{len(lost)} tasks have no result, e.g. {lost[:5]}"
    assert not failed, f"{states}: e.g. {failed[:3]}"
    ledger = {d["_id"]: d for d in db["ledger"].find({}) if d["_id"] in ids}
    unrecorded = sorted(ids - set(ledger))
    assert not unrecorded, f"{len(unrecorded)} succeeded without their side effect"
    runs = Counter(d["runs"] for d in ledger.values())
    late = [tid for tid, d in ledger.items() if max(d["at"]) > meta[tid]["date_done"]]
    in_flight = [tid for tid in late
                 if any(abs((f - meta[tid]["date_done"]).total_seconds()) <= IN_FLIGHT_S
                        for f in faults)]
    unexplained = sorted(set(late) - set(in_flight))
    assert not unexplained, (
        f"{len(unexplained)} tasks ran again although their SUCCESS was stored well away from "
        f"any fault, e.g. {[(t, meta[t]['date_done'], ledger[t]['at']) for t in unexplained[:3]]}")
    return {"tasks": len(ids), "lost": len(lost), "failed": len(failed),
            "ran_twice_or_more": sum(n for r, n in runs.items() if r > 1),
            "max_runs": max(runs), "ran_after_success": len(unexplained),
            "ran_again_write_in_flight": len(in_flight)}


def kill_until(done, live, start, rng, deadline, what):
    """SIGKILLs one of `live` (replaced by `start()`) every 0.5-2.5 s until `done()`; the
    (naive UTC) time of each kill. Fails at `deadline` (monotonic), saying `what()` is left."""
    faults = []
    while not done():
        assert time.monotonic() < deadline, f"{what()} not done ({len(faults)} kills)"
        time.sleep(rng.uniform(0.5, 2.5))
        i = rng.randrange(len(live))
        live[i].kill()
        faults.append(utcnow())
        live[i] = start()
    return faults


# --- 1. workers SIGKILLed -------------------------------------------------------------------

def test_workers_sigkilled_repeatedly_during_a_20000_task_run(names, amqp, mongo, workers):
    q = names.queue("kill")
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    from conftest import AMQP_URL, BROKER_URL

    def worker():
        return start_worker(workers, q, BROKER_URL, backend, MONGODB_URI, mongo.name,
                            ["-c", "16"])
    live = [worker(), worker()]
    for w in live:
        w.wait_ready(timeout=60)
    ids = [str(uuid.uuid4()) for _ in range(TASKS)]
    published = {}
    publisher = threading.Thread(target=lambda: published.update(
        ids=publish_all(AMQP_URL, q, record_messages(ids, "ledger", 2))))
    begin = time.monotonic()
    publisher.start()

    meta = mongo["celery_taskmeta"]
    fault_times = kill_until(lambda: (count(meta, {"status": "SUCCESS"}) or 0) >= TASKS,
                             live, worker, random.Random(names.run), begin + 900,
                             lambda: "the run")
    kills = len(fault_times)
    elapsed = time.monotonic() - begin
    publisher.join()
    assert published["ids"] == ids
    wait_for(lambda: amqp.ready(q) == 0, 60, what="the queue to drain")
    assert amqp.ready(names.dead_queue) in (0, None), "dead-lettered messages"
    outcome = check_outcome(mongo, ids, fault_times)
    for w in live:
        assert w.stop() == 0, w.log()[-3000:]
    figures("workers SIGKILLed", kills=kills, seconds=round(elapsed, 1), **outcome)


# --- 5. canvas under SIGKILL ----------------------------------------------------------------

def test_chains_and_chords_complete_while_workers_are_sigkilled(names, amqp, mongo, workers,
                                                               mongo_app):
    from celery import chain, chord
    q, unlock = names.queue("canvas"), names.queue("unlock")
    mongo_app.conf.task_default_queue = unlock
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"

    def worker():
        return workers([q, unlock], args=["--result-backend", backend, "--default-queue", unlock,
                                          "--log-format", "json", "-c", "8"],
                       env={"MAESTRO_MONGO_URI": MONGODB_URI, "MAESTRO_MONGO_DATABASE": mongo.name},
                       ready=False)

    def step():
        return mongo_app.signature(RECORD, args=["ledger"], kwargs={"ms": 50}, queue=q,
                                   immutable=True)
    live = [worker(), worker()]
    for w in live:
        w.wait_ready(timeout=60)
    rng = random.Random(names.run)
    chains, chords, ids = [], [], []
    begin = time.monotonic()
    for i in range(CANVAS):
        if i % 2 == 0:
            res = chain(step(), step(), step()).apply_async()
            steps = [res.parent.parent.id, res.parent.id, res.id]
            chains.append(res.id)
            ids += steps
        else:
            res = chord([step() for _ in range(5)])(step())
            chords.append(res.id)
            ids += [m.id for m in res.parent.results] + [res.id]
    meta = mongo["celery_taskmeta"]
    ends = set(chains) | set(chords)
    fault_times = kill_until(
        lambda: len(ends & succeeded(meta)) == len(ends), live, worker, rng, begin + 600,
        lambda: (f"{len(ends - succeeded(meta))} of {len(ends)} chains and chords, e.g. "
                 f"{sorted(ends - succeeded(meta))[:3]}"))
    kills = len(fault_times)
    elapsed = time.monotonic() - begin
    outcome = check_outcome(mongo, ids, fault_times)
    for w in live:
        assert w.stop() == 0, w.log()[-3000:]
    figures("canvas, workers SIGKILLed", kills=kills, seconds=round(elapsed, 1),
            chains=len(chains), chords=len(chords), **outcome)


# --- 2. MongoDB stopped and restarted --------------------------------------------------------

def test_mongodb_stopped_and_restarted_mid_run(names, amqp, secantus, workers):
    from conftest import AMQP_URL, BROKER_URL
    db_name = f"t{names.run}"
    client = pymongo.MongoClient(secantus.uri, serverSelectionTimeoutMS=1000)
    db = client[db_name]
    q = names.queue("mongo")
    backend = f"{secantus.uri}/{db_name}"
    n = min(TASKS, 3000)
    live = [start_worker(workers, q, BROKER_URL, backend, secantus.uri, db_name, ["-c", "8"])
            for _ in range(2)]
    for w in live:
        w.wait_ready(timeout=60)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    published = {}

    def paced():
        # About 200 a second, so the stop lands in the middle of the run.
        for i, m in enumerate(record_messages(ids, "ledger", 2)):
            if i % 20 == 0:
                time.sleep(0.1)
            yield m
    publisher = threading.Thread(target=lambda: published.update(
        ids=publish_all(AMQP_URL, q, paced())))
    begin = time.monotonic()
    publisher.start()
    meta = db["celery_taskmeta"]
    wait_for(lambda: (count(meta, {"status": "SUCCESS"}) or 0) >= n // 10, 120,
             what="a tenth of the tasks")
    before = count(meta, {"status": "SUCCESS"})
    stopped_at = utcnow()
    secantus.stop()
    down_at = time.monotonic()
    time.sleep(8)
    secantus.start()
    restarted_at = utcnow()
    down = time.monotonic() - down_at
    wait_for(lambda: (count(meta, {"status": "SUCCESS"}) or 0) >= n, 300, interval=0.5,
             what="every result after the restart")
    elapsed = time.monotonic() - begin
    publisher.join()
    assert published["ids"] == ids
    assert before < n, f"every task was done before MongoDB stopped ({before})"
    wait_for(lambda: amqp.ready(q) == 0, 60, what="the queue to drain")
    assert all(alive(w) for w in live), "a worker exited while MongoDB was away"
    outcome = check_outcome(db, ids, [stopped_at, restarted_at])
    retried = sum(w.log().count('"result_store_retry"') + w.log().count('"task_retry"')
                  for w in live)
    for w in live:
        assert w.stop() == 0, w.log()[-3000:]
    client.drop_database(db_name)
    client.close()
    figures("MongoDB stopped and restarted", done_before_stop=before,
            seconds_down=round(down, 1), seconds=round(elapsed, 1),
            retries_logged=retried, **outcome)


# --- 3. RabbitMQ stopped and restarted -------------------------------------------------------

class Enqueuer(threading.Thread):
    """POSTs maestro.record to the API in a loop, at most `rate` a second (what the workers
    and SecantusDB keep up with); keeps every answer."""

    def __init__(self, api, queue, rate=100):
        super().__init__(daemon=True)
        self.api, self.queue = api, queue
        self.stopping = threading.Event()
        self.answers = []  # (monotonic time, status, task id or reason)
        self.pause = 1.0 / rate

    def run(self):
        while not self.stopping.is_set():
            time.sleep(self.pause)
            try:
                status, body = self.api.request(
                    "POST", f"/tasks/{RECORD}",
                    {"args": ["ledger"], "kwargs": {"ms": 2}, "queue": self.queue}, timeout=30)
            except OSError as e:
                status, body = "error", str(e)
            tid = body.get("task_id") if isinstance(body, dict) else None
            self.answers.append((time.monotonic(), status, tid or body))
            if status != 202:
                time.sleep(0.05)

    def finish(self, db, faults, timeout):
        """Stops enqueueing, checks the API answered only 202 or 503, waits until every 202'd
        task succeeded; returns (statuses, accepted ids, check_outcome's figures)."""
        self.stopping.set()
        self.join(60)
        statuses = self.statuses()
        assert set(statuses) <= {202, 503}, statuses
        accepted = self.accepted()
        meta = db["celery_taskmeta"]
        wait_for(lambda: set(accepted) <= succeeded(meta), timeout, interval=1,
                 what="every 202'd task to succeed")
        return statuses, accepted, check_outcome(db, accepted, faults)

    def accepted(self):
        return [tid for _, status, tid in self.answers if status == 202]

    def statuses(self):
        return Counter(status for _, status, _ in self.answers)


def test_rabbitmq_stopped_and_restarted_mid_run(names, mongo, rabbit_nodes, workers, fleet,
                                                apis):
    (node,) = rabbit_nodes(1)
    q = names.queue("rabbit")
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    live = [start_worker(workers, q, node.url, backend, MONGODB_URI, mongo.name, ["-c", "8"])
            for _ in range(2)]
    for w in live:
        w.wait_ready(timeout=60)
    api = apis(["-b", node.url, "--routes", f"{RECORD}={q}", "--result-backend", backend,
                "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
                "--publish-timeout", "5"])
    mongo["schedulers"].insert_one({
        "_id": "every-second", "name": "every-second", "enabled": True,
        "period_type": "interval", "interval": {"every": 1, "period": "seconds"},
        "task": RECORD, "args": ["beat_ledger"], "queue": q, "run_immediately": True})
    beat = fleet.add("beat", [BEAT_BIN, "-b", node.url, "--mongo-uri", MONGODB_URI,
                              "--mongo-database", mongo.name, "--lease-name", f"t{names.run}",
                              "--lease-ttl", "4", "--renew-deadline", "2.5", "--tick", "0.5",
                              "--default-queue", q, "--metrics-addr", "127.0.0.1:0",
                              "--log-format", "json"])
    wait_for(lambda: mongo["beat_ledger"].count_documents({}) >= 2, 60, what="beat firing")

    enq = Enqueuer(api, q)
    begin = time.monotonic()
    enq.start()
    time.sleep(5)
    stopped_at = utcnow()
    node.stop()
    stopped = time.monotonic()
    time.sleep(5)
    node.start()
    node.wait_up()
    restarted = time.monotonic()
    # Everyone reconnects by themselves: the API answers 202 again, beat fires again.
    wait_for(lambda: any(t > restarted and s == 202 for t, s, _ in enq.answers), 60,
             what="a 202 after the restart")
    beat_runs_at_restart = mongo["beat_ledger"].count_documents({})
    wait_for(lambda: mongo["beat_ledger"].count_documents({}) >= beat_runs_at_restart + 3, 60,
             what="beat firing after the restart")
    time.sleep(5)
    statuses, accepted, outcome = enq.finish(mongo, [stopped_at], 180)
    assert statuses[503] > 0, "no 503 while the broker was down"
    assert all(alive(w) for w in live) and beat.alive(), "a process exited instead of reconnecting"
    reconnects = {w.log_path.name: w.log().count('"connection_lost"') for w in live}
    assert all(n >= 1 for n in reconnects.values()), reconnects
    for w in live:
        assert w.stop() == 0, w.log()[-3000:]
    assert beat.term() == 0, beat.log()[-3000:]
    figures("RabbitMQ stopped and restarted", requests=len(enq.answers),
            accepted_202=len(accepted), refused_503=statuses[503],
            seconds_down=round(restarted - stopped, 1),
            seconds=round(time.monotonic() - begin, 1),
            beat_runs=mongo["beat_ledger"].count_documents({}), **outcome)


# --- 4. a 3-node cluster, one node killed ----------------------------------------------------

def test_three_node_cluster_loses_a_node_under_load(names, mongo, rabbit_nodes, workers, apis):
    first, *others = rabbit_nodes(3)
    for node in others:
        node.ctl("stop_app")
        node.ctl("join_cluster", first.name)
        node.ctl("start_app")
    status = first.ctl("cluster_status", "--formatter", "json").stdout
    assert all(n.name in status for n in others), status
    # Clients list every node, the first one first: they talk to it, and the quorum queues
    # they declare have their leader there; that is the node killed.
    urls = ";".join(n.url for n in [first, *others])
    q = names.queue("cluster")
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    live = [start_worker(workers, q, urls, backend, MONGODB_URI, mongo.name,
                         ["-c", "8", "--queue-type", "quorum"]) for _ in range(2)]
    for w in live:
        w.wait_ready(timeout=60)
    api = apis(["-b", urls, "--routes", f"{RECORD}={q}", "--result-backend", backend,
                "--mongo-uri", MONGODB_URI, "--mongo-database", mongo.name,
                "--queue-type", "quorum", "--publish-timeout", "10"])
    leader_info = first.ctl("list_queues", "name", "type", "leader", "--formatter", "json").stdout
    assert first.name in leader_info, leader_info

    enq = Enqueuer(api, q)
    begin = time.monotonic()
    enq.start()
    time.sleep(6)
    killed_at = utcnow()
    first.kill()
    killed = time.monotonic()
    try:
        wait_for(lambda: any(t > killed + 1 and s == 202 for t, s, _ in enq.answers), 90,
                 what="a 202 after the node was killed")
    except AssertionError:
        queues = others[0].ctl("list_queues", "name", "type", "leader", "online", "messages",
                               check=False).stdout
        raise AssertionError(f"no 202 after the kill; queues:\n{queues}")
    time.sleep(6)
    statuses, accepted, outcome = enq.finish(mongo, [killed_at], 240)
    assert all(alive(w) for w in live)
    moved = others[0].ctl("list_queues", "name", "leader", "--formatter", "json").stdout
    for w in live:
        assert w.stop() == 0, w.log()[-3000:]
    for node in others:
        node.ctl("delete_queue", q, check=False)
    figures("3-node cluster, one node SIGKILLed", requests=len(enq.answers),
            accepted_202=len(accepted), refused_503=statuses[503],
            seconds=round(time.monotonic() - begin, 1), **outcome)
    assert first.name not in json.dumps([e for e in json.loads(moved) if e["name"] == q]), moved
