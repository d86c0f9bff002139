"""maestro-beat failover: three beats, the leader SIGKILLed and SIGSTOPped for over a minute.

The schedules fire every second into a queue a real maestro-worker consumes (results in
MongoDB, so a task id that already succeeded is not run again). From the worker's log the test
knows which task ids ran and when; task ids are uuid5(schedule id, due time), so it also knows
which slot each run was.
"""
import json
import os
import random
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timezone

import pytest

from conftest import BROKER_URL, MONGODB_URI, ROOT, wait_for

BEAT_BIN = os.environ.get("MAESTRO_BEAT_BIN", str(ROOT / "target" / "debug" / "maestro-beat"))
# Must match maestro_beat::schedule::TASK_ID_NAMESPACE.
TASK_ID_NAMESPACE = uuid.UUID(int=0x6D61_6573_7472_6F2D_6265_6174_2D69_6473)
TTL, DEADLINE, TICK, GRACE = 4.0, 2.5, 0.5, 2.0
CHAOS_SECONDS = float(os.environ.get("MAESTRO_BEAT_CHAOS_SECONDS", "62"))


def slot_id(schedule_id, due_ms):
    return str(uuid.uuid5(TASK_ID_NAMESPACE, f"{schedule_id}@{due_ms}"))


class Beat:
    def __init__(self, names, tmp_path, db, index, extra=()):
        self.name = f"beat{index}-{names.run}"
        self.log_path = tmp_path / f"{self.name}.log"
        self.log_file = open(self.log_path, "w")
        argv = [BEAT_BIN, "-b", BROKER_URL, "--mongo-uri", MONGODB_URI,
                "--mongo-database", db.name, "--lease-name", f"t{names.run}",
                "--lease-ttl", str(TTL), "--renew-deadline", str(DEADLINE), "--tick", str(TICK),
                "--catch-up-grace", str(GRACE), "--default-queue", names.queue("beat"),
                "--metrics-addr", "127.0.0.1:0", "-n", self.name, "--log-format", "json",
                *extra]
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.stopped = False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def metrics_port(self):
        for line in self.log().splitlines():
            if '"metrics_listening"' in line:
                return int(json.loads(line)["addr"].rsplit(":", 1)[1])
        return None

    def metrics(self):
        port = wait_for(self.metrics_port, 10, what=f"{self.name} metrics address")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log_file.close()


@pytest.fixture
def beats(names, tmp_path, mongo):
    started = []

    def start(extra=()):
        b = Beat(names, tmp_path, mongo, len(started), extra)
        started.append(b)
        return b

    yield start
    for b in started:
        b.signal(signal.SIGCONT)
        b.kill()


def worker_runs(worker):
    """(task id, wall time) of every run the worker started, and ids it skipped as done."""
    started, duplicates = [], []
    for line in worker.log().splitlines():
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        if e.get("event") == "task_started":
            t = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
            started.append((e["id"], t.timestamp()))
        elif e.get("event") == "task_duplicate":
            duplicates.append(e["id"])
    return started, duplicates


def leader(mongo, names, live):
    doc = mongo["maestro_beat_lease"].find_one({"_id": f"t{names.run}"})
    if not doc:
        return None
    return next((b for b in live if b.name == doc["holder"]), None)


def test_three_beats_fire_each_slot_once_through_kills_and_stops(names, amqp, mongo, workers,
                                                                beats):
    q = names.queue("beat")
    backend = f"{MONGODB_URI.rstrip('/')}/{mongo.name}"
    worker = workers([q], args=["--result-backend", backend, "--log-format", "json",
                                "--log-level", "info,maestro_worker=debug"])
    schedules = ["every-second-a", "every-second-b"]
    for sid in schedules:
        mongo["schedulers"].insert_one({
            "_id": sid, "name": sid, "enabled": True, "period_type": "interval",
            "interval": {"every": 1, "period": "seconds"}, "task": "maestro.echo",
            "args": [sid], "queue": q, "run_immediately": True})
    live = [beats() for _ in range(3)]
    wait_for(lambda: leader(mongo, names, live), 20, what="a leader")

    rng = random.Random(names.run)
    faults = []  # (kind, time the leader stopped firing, resumed-at for stops)
    begin = time.time()
    while time.time() - begin < CHAOS_SECONDS:
        time.sleep(rng.uniform(2.0, 4.0))
        lead = wait_for(lambda: leader(mongo, names, live), 20, what="a leader")
        kind = rng.choice(["kill", "kill", "stop_long", "stop_short"])
        t = time.time()
        if kind == "kill":
            lead.kill()
            live.remove(lead)
            live.append(beats())
        elif kind == "stop_long":
            lead.signal(signal.SIGSTOP)
            time.sleep(TTL + 2.0)
            lead.signal(signal.SIGCONT)
        else:
            lead.signal(signal.SIGSTOP)
            time.sleep(1.0)
            lead.signal(signal.SIGCONT)
        faults.append((kind, t))
        # Let the new leader settle before the next fault.
        time.sleep(TTL + TICK + 1.0)
    end = time.time()
    time.sleep(2.0)

    # Exactly one beat leads and says so in its metrics.
    leading = [b for b in live if b.metrics().get("maestro_beat_is_leader") == 1.0]
    assert len(leading) == 1, [b.name for b in leading]
    for b in live:
        b.signal(signal.SIGTERM)
    for b in live:
        assert b.proc.wait(15) == 0, b.log()[-2000:]
    wait_for(lambda: amqp.ready(q) == 0, 30, what="the queue to drain")
    time.sleep(1.0)
    assert worker.stop() == 0

    started, duplicates = worker_runs(worker)
    runs = Counter(tid for tid, _ in started)
    twice = [tid for tid, n in runs.items() if n > 1]
    assert not twice, f"task ids run more than once: {twice}"
    when = dict(started)

    report = {"faults": Counter(k for k, _ in faults), "runs": len(started),
              "duplicate_deliveries_skipped": len(duplicates)}
    ordered = sorted(started, key=lambda x: x[1])
    all_slots = set()
    for sid in schedules:
        doc = mongo["schedulers"].find_one({"_id": sid})
        # The first run (run_immediately) is due at the millisecond beat first saw the
        # schedule, shortly before the worker ran it; every later slot is a second apart.
        first_due = next((int(t * 1000) - back for tid, t in ordered for back in range(3000)
                          if slot_id(sid, int(t * 1000) - back) == tid), None)
        assert first_due is not None, f"no run of {sid} found"
        last_due = int(doc["last_run_at"].replace(tzinfo=timezone.utc).timestamp() * 1000)
        slots = range(first_due, last_due + 1, 1000)
        all_slots.update(slot_id(sid, ms) for ms in slots)
        fired = [ms for ms in slots if slot_id(sid, ms) in runs]
        assert len(fired) == doc["total_run_count"], (len(fired), doc["total_run_count"])
        assert not doc.get("beat_pending"), doc

        # Slots not fired are only those inside a failover window, and each window (fault to
        # the first run of a slot due after it) is at most lease TTL + one tick (+1 s for this
        # debug build).
        missing = [ms for ms in slots if slot_id(sid, ms) not in runs]
        windows = []
        for kind, t in faults:
            # The first run of a slot due after the fault (a slot due just before it may
            # still run a moment after it).
            after = [when[slot_id(sid, ms)] for ms in fired if ms / 1000 >= t]
            if after:
                windows.append((kind, t, min(after) - t))
        for ms in missing:
            due = ms / 1000
            owner = [w for w in windows if w[1] - 1.5 <= due <= w[1] + w[2] + 0.5]
            assert owner, f"{sid}: slot due {due - begin:.1f}s into the run was not fired " \
                          f"and no fault explains it; faults={faults}"
        failovers = [w[2] for w in windows if w[0] in ("kill", "stop_long")]
        report[sid] = {"slots": len(slots), "fired": len(fired),
                       "missed_in_failover": len(missing),
                       "max_failover_s": round(max(failovers, default=0), 2)}
        for kind, t, gap in windows:
            if kind in ("kill", "stop_long"):
                assert gap <= TTL + TICK + 1.0, f"{sid}: failover after {kind} took {gap:.2f}s"
            else:
                assert gap <= 2.5, f"{sid}: a short stop delayed firing {gap:.2f}s"
    assert set(runs) <= all_slots, f"runs that are no slot: {set(runs) - all_slots}"
    assert end - begin >= CHAOS_SECONDS
    print(f"\nbeat failover: {report}")
