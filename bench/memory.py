#!/usr/bin/env python3
"""Worker memory: RSS when idle, and while N countdown tasks are pending.

Starts the release worker on a queue of its own, reads VmRSS once it is idle, then publishes N
Celery protocol-v2 messages with an `eta` one hour ahead (as Python Celery sends countdown tasks
to classic queues). The worker moves each one into the broker's delay queues; the script waits
until all N sit there, then reads VmRSS and the peak (VmHWM). Cleans up every queue and exchange
it made, and stops the worker.

usage: memory.py [--n 100000] [--worker target/release/maestro-worker]
Needs pika and a RabbitMQ at AMQP_URL.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pika

# The benchmark task is the diagnostic maestro.noop, which deployments leave off.
os.environ.setdefault("MAESTRO_ENABLE_DIAGNOSTICS", "true")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--worker", default="target/release/maestro-worker")
    ap.add_argument("--idle-secs", type=float, default=5.0)
    a = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    queue, prefix, dead = f"mem{run}", f"mem{run}_delayed", f"mem{run}.dead"
    log = open(f"memory-{run}.log", "w")
    proc = subprocess.Popen([a.worker, "-Q", queue, "--delay-prefix", prefix,
                             "--dead-letter-exchange", dead, "--dead-letter-queue", dead],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    out = {}
    try:
        deadline = time.time() + 30
        while "worker_ready" not in open(log.name).read():
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("worker did not become ready")
            time.sleep(0.1)
        time.sleep(a.idle_secs)
        out["idle_rss_mb"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
        eta = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        body = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()
        t0 = time.time()
        for _ in range(a.n):
            tid = str(uuid.uuid4())
            props = pika.BasicProperties(
                content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                correlation_id=tid,
                headers={"lang": "py", "task": "maestro.noop", "id": tid, "eta": eta, "retries": 0,
                         "timelimit": [None, None], "root_id": tid, "ignore_result": True})
            ch.basic_publish("", queue, body, props)
        level = f"{prefix}_11"  # 3600 s: first waits in level 11 (2048 s)
        peak_rss = 0
        while True:
            peak_rss = max(peak_rss, status_kb(proc.pid, "VmRSS"))
            moved = ch.queue_declare(level, passive=True).method.message_count
            if moved >= a.n:
                break
            if time.time() - t0 > 600:
                raise SystemExit(f"only {moved} of {a.n} moved to the delay queues")
            time.sleep(0.2)
        out["countdown_tasks_pending"] = a.n
        out["seconds_to_move_all"] = round(time.time() - t0, 1)
        out["rss_with_pending_mb"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
        out["peak_rss_sampled_mb"] = round(peak_rss / 1024, 1)
        out["peak_rss_vmhwm_mb"] = round(status_kb(proc.pid, "VmHWM") / 1024, 1)
        out["task_queue_left"] = ch.queue_declare(queue, passive=True).method.message_count
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        for q in [queue, dead] + [f"{prefix}_{i}" for i in range(28)]:
            ch.queue_delete(q)
        for x in [queue, dead, f"{prefix}_delivery"] + [f"{prefix}_{i}" for i in range(28)]:
            ch.exchange_delete(x)
        conn.close()
        os.unlink(log.name)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
