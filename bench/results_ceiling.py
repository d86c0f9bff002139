#!/usr/bin/env python3
"""Results against their store's ceiling, side by side in one run.

Per round, interleaved (worker, ceiling, worker, ceiling, ...):
- worker: N persistent Celery protocol-v2 `maestro.noop` messages asking for a result are
  published to a queue of the round's own; then maestro-worker starts on it with
  `--result-backend mongodb://` and drains it. The rate is read from the worker's own
  `maestro_worker_acks_total` (a delivery is acknowledged only after its result is stored):
  steady = 10% -> 90% of N, whole = start -> N.
- ceiling: a plain pymongo client writes the same N result documents (the fields and the
  conditional upsert the worker writes: `{_id, status != SUCCESS}`, `$set` of status, result,
  traceback, children, date_done, retries, name, worker, queue, args, kwargs, expires_at) in
  `update` commands of --batch statements, one after another, into a database of its own
  on the same server, in a collection with the worker's TTL index on `expires_at`, with the
  worker's write concern (majority and journaled on a replica set member, as SecantusDB
  reports itself; the URL's when it names one). Then the same with w:1, for scale.
Beside each rate: the store's CPU per result (when the store runs on this machine), the
store's operation counters, RabbitMQ's CPU and how busy the machine was.
Prints each round and the median ratio worker/ceiling. Drops its databases, deletes the
queues and exchanges it and its workers declared, stops the worker.

usage: results_ceiling.py [--n 3000] [--rounds 3] [--batch 256]
                          [--worker target/release/maestro-worker] [-- worker flags...]
Needs the test venv (pika, pymongo), RabbitMQ at AMQP_URL and MongoDB at MONGODB_URI.
"""
import argparse
import datetime
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

import pika
import pymongo

from benchlib import (broker_pid, cpu_meter, cpu_seconds, delete_worker_topology, free_port,
                      listener_pid, machine_busy, prefill, worker_acks)

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker_round(args, run, index):
    queue, db = f"rb{run}.{index}", f"rb{run}w{index}"
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.confirm_delivery()
    proc = None
    try:
        prefill(ch, queue, args.n, "results-bench", ignore_result=False)
        port = free_port()
        store_cpu = cpu_meter(listener_pid(MONGODB_URI))
        ops0 = opcounters()
        broker_cpu = cpu_meter(broker_pid())
        busy0 = machine_busy()
        base, _, options = MONGODB_URI.partition("?")
        backend = base.rstrip("/") + f"/{db}" + (f"?{options}" if options else "")
        proc = subprocess.Popen(
            [args.worker, "-Q", queue, "-n", f"rb{run}-{index}@%h", "--enable-diagnostics",
             "true", "--result-backend", backend, "--metrics-addr", f"127.0.0.1:{port}",
             "--delay-prefix", f"rb{run}_delayed", "--dead-letter-exchange", f"rb{run}.dead",
             "--dead-letter-queue", f"rb{run}.dead", "--without-heartbeat", "--remote-control",
             "false", *args.worker_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "CELERY_BROKER_URL": BROKER_URL})
        started = None
        marks = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            n = worker_acks(port)
            now = time.monotonic()
            if n is not None and started is None:
                started = now
            if n is not None:
                for frac in (0.1, 0.9, 1.0):
                    if frac not in marks and n >= frac * args.n:
                        marks[frac] = now
                if 1.0 in marks:
                    break
            if proc.poll() is not None:
                sys.exit("the worker exited")
            time.sleep(0.05)
        else:
            sys.exit(f"the worker did not drain {args.n} in {args.timeout} s")
        steady = 0.8 * args.n / (marks[0.9] - marks[0.1])
        whole = args.n / (marks[1.0] - started)
        cpu = cpu_seconds(proc.pid)
        store_cpu, broker_cpu = store_cpu(), broker_cpu()
        ops = opcounters(ops0)
        busy = machine_busy(busy0)
        with pymongo.MongoClient(MONGODB_URI) as client:
            stored = client[db].celery_taskmeta.count_documents({})
        assert stored == args.n, f"{stored} results stored, expected {args.n}"
        return steady, whole, cpu, store_cpu, ops, broker_cpu, busy
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # The worker's queue, its dead letters and its delay levels (kombu's 28, and the
        # delivery exchange), all named after this run.
        delete_worker_topology(ch, [queue], f"rb{run}.dead", f"rb{run}_delayed")
        conn.close()
        with pymongo.MongoClient(MONGODB_URI) as client:
            client.drop_database(db)


def worker_concern():
    """The write concern the worker writes results with (results/src/mongo.rs): the URL's when
    it names one, else majority and journaled where the server is a replica set member, else
    the server's default. A ceiling must write with the same durability to be one."""
    with pymongo.MongoClient(MONGODB_URI) as client:
        if client.write_concern.document:
            return client.write_concern
        if "setName" in client.admin.command("hello"):
            return pymongo.WriteConcern(w="majority", j=True)
    return pymongo.WriteConcern()


def ceiling_round(args, run, index, concern):
    db = f"rb{run}c{index}"
    with pymongo.MongoClient(MONGODB_URI) as client:
        try:
            return write_ceiling(args, client[db], concern)
        finally:
            client.drop_database(db)


def write_ceiling(args, database, concern):
    coll = database.get_collection("celery_taskmeta", write_concern=concern)
    # The worker's collection layout: its TTL index on expires_at.
    coll.create_index("expires_at", name="maestro_results_ttl", expireAfterSeconds=0)
    coll.insert_one({"_id": "warm-up"})
    host = socket.gethostname()
    statements = []
    for _ in range(args.n):
        tid = str(uuid.uuid4())
        statements.append(pymongo.UpdateOne(
            {"_id": tid, "status": {"$ne": "SUCCESS"}},
            {"$set": {"status": "SUCCESS", "result": "null", "traceback": None, "children": [],
                      "date_done": datetime.datetime.now(datetime.timezone.utc), "retries": 0,
                      "name": "maestro.noop", "worker": f"bench@{host}", "queue": "q",
                      "args": [], "kwargs": {},
                      "expires_at": datetime.datetime.now(datetime.timezone.utc)
                      + datetime.timedelta(days=1)}},
            upsert=True))
    store_cpu = cpu_meter(listener_pid(MONGODB_URI))
    ops0 = opcounters()
    busy0 = machine_busy()
    t0 = time.monotonic()
    t10 = t90 = None
    for i in range(0, args.n, args.batch):
        coll.bulk_write(statements[i:i + args.batch], ordered=False)
        done = i + args.batch
        now = time.monotonic()
        if t10 is None and done >= 0.1 * args.n:
            t10 = now
        if t90 is None and done >= 0.9 * args.n:
            t90 = now
    whole = args.n / (time.monotonic() - t0)
    steady = 0.8 * args.n / (t90 - t10) if t90 and t90 > t10 else whole
    store_cpu = store_cpu()
    ops = opcounters(ops0)
    busy = machine_busy(busy0)
    return steady, whole, store_cpu, ops, busy


def opcounters(since=None):
    """The server's operation counters (serverStatus), or their growth `since` earlier ones."""
    with pymongo.MongoClient(MONGODB_URI) as client:
        ops = client.admin.command("serverStatus").get("opcounters", {})
    if since is None:
        return ops
    return {k: v - since.get(k, 0) for k, v in ops.items() if v - since.get(k, 0)}


def per_result(cpu, n):
    """The store's CPU per result, when the store runs on this machine."""
    return "not local" if cpu is None else f"{cpu * 1000 / n:.2f} ms per result"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--worker", default=str(ROOT / "target" / "release" / "maestro-worker"))
    p.add_argument("worker_args", nargs="*")
    args = p.parse_args()
    # A SIGTERM (timeout, Ctrl-C's sibling) still runs the clean-up of the round in progress.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:8]
    concern = worker_concern()
    print(f"write concern of the worker and the ceiling: {concern.document or 'server default'}",
          flush=True)
    rows = []
    for i in range(args.rounds):
        w = worker_round(args, run, i)
        c = ceiling_round(args, run, f"{i}", concern)
        # For scale: the same writes acknowledged by the primary's memory alone (w:1, no
        # journal wait), which the worker does with `?w=1` in its URL.
        d = ceiling_round(args, run, f"{i}d", pymongo.WriteConcern(w=1)) if concern.document \
            else None
        rows.append((w, c))
        print(f"round {i + 1}: worker steady {w[0]:,.0f}/s whole {w[1]:,.0f}/s "
              f"(CPU {w[2] * 1000 / args.n:.2f} ms per result, store {per_result(w[3], args.n)}) | "
              f"pymongo steady {c[0]:,.0f}/s whole {c[1]:,.0f}/s "
              f"(store {per_result(c[2], args.n)}) | ratio {w[0] / c[0]:.2f}x",
              flush=True)
        if d is not None:
            print(f"  pymongo with w:1 steady {d[0]:,.0f}/s (store {per_result(d[2], args.n)})",
                  flush=True)
        print(f"  store operations: worker {w[4]}, pymongo {c[3]}; broker CPU in the worker's "
              f"round {per_result(w[5], args.n)}; machine busy: worker's round {w[6]:.0%}, "
              f"pymongo's {c[4]:.0%}", flush=True)
    ratio = statistics.median(w[0] / c[0] for w, c in rows)
    print(f"median: worker {statistics.median(w[0] for w, _ in rows):,.0f} results/s, pymongo "
          f"{statistics.median(c[0] for _, c in rows):,.0f}/s, ratio {ratio:.2f}x "
          f"(N={args.n}, batch {args.batch})")


if __name__ == "__main__":
    main()
