#!/usr/bin/env python3
"""A 100,000-row report: worker peak memory, time, and `finished` only after the last chunk,
against the store's raw insert rate in the same run.

Seeds N inventory items in a fresh database, starts the release worker on queues of its own
(report tasks and chunks on one queue, the notification routed to a queue this script reads),
sends `maestro.report.general`, samples the worker's RSS until the `finished` notification
arrives, and checks every row was stored when it did. Then the ceiling: a plain pymongo client
inserts the very rows the report stored into a collection of its own on the same server, in
unordered batches of --qtd (what the report's chunks write), and the report's rows per second
are shown against that rate, and against the time the same client takes for all the store work
a report does (read the inventory, insert the rows, read them back for columns and charts). Drops the databases, deletes the queues and stops the worker.

usage: report_memory.py [--n 100000] [--qtd 500] [--worker target/release/maestro-worker]
                        [-- more worker flags]
Needs pika, pymongo, RabbitMQ at AMQP_URL and MongoDB at MONGODB_URI.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pika
import pymongo
from bson import ObjectId

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import broker_pid, cpu_meter, listener_pid, machine_busy  # noqa: E402

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
# The report's owner: reports read only the items whose roles name them.
OWNER = ObjectId("5f00000000000000000000b1")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--qtd", type=int, default=500)
    ap.add_argument("--worker", default="target/release/maestro-worker")
    ap.add_argument("worker_args", nargs="*", help="more maestro-worker flags (after --)")
    a = ap.parse_args()
    # A SIGTERM still runs the clean-up below (worker, queues, databases).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:8]
    queue, notify, prefix, dead = f"rep{run}", f"rep{run}.notify", f"rep{run}_delayed", f"rep{run}.dead"
    client = pymongo.MongoClient(MONGODB_URI)
    inv, rep = client[f"rep{run}"], client[f"rep{run}_r"]
    out = {"rows": a.n, "insert_qtd": a.qtd}
    t = time.time()
    batch = []
    for i in range(a.n):
        batch.append({"_id": f"s{i}", "hostname": f"host-{i}", "status": "active",
                      "ipv4": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                      "os": {"base": "linux", "dist": "debian"}, "tags": [{"key": "k", "value": i}],
                      "roles": [{"_id": OWNER, "role": 7}]})
        if len(batch) == 1000:
            inv["servers"].insert_many(batch)
            batch = []
    if batch:
        inv["servers"].insert_many(batch)
    out["seed_s"] = round(time.time() - t, 1)

    routes = ",".join(f"{task}={queue}" for task in [
        "maestro.report.general", "maestro.report.upload", "maestro.report.finish"])
    routes += f",maestro.notify={notify}"
    log = open(f"report-{run}.log", "w")
    proc = subprocess.Popen([a.worker, "-Q", queue, "--delay-prefix", prefix,
                             "--dead-letter-exchange", dead, "--dead-letter-queue", dead,
                             "--result-backend", f"{MONGODB_URI.rstrip('/')}/{inv.name}",
                             "--mongo-uri", MONGODB_URI, "--mongo-database", inv.name,
                             "--reports-database", rep.name, "--insert-qtd", str(a.qtd),
                             "--routes", routes, *a.worker_args],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.queue_declare(notify, durable=True)
    try:
        deadline = time.time() + 30
        while "worker_ready" not in open(log.name).read():
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit("worker did not become ready")
            time.sleep(0.1)
        out["idle_rss_mb"] = round(status_kb(proc.pid, "VmRSS") / 1024, 1)
        tid = str(uuid.uuid4())
        body = json.dumps([[], {"report_id": "big", "filters": [], "component": "servers",
                                "owner_user": str(OWNER)},
                           {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        props = pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", delivery_mode=2,
            correlation_id=tid,
            headers={"lang": "py", "task": "maestro.report.general", "id": tid, "retries": 0,
                     "timelimit": [None, None], "root_id": tid})
        store = listener_pid(MONGODB_URI)
        meters = {"worker": cpu_meter(proc.pid), "store": cpu_meter(store),
                  "broker": cpu_meter(broker_pid())}
        busy0 = machine_busy()
        t = time.time()
        ch.basic_publish("", queue, body.encode(), props)
        peak = 0
        while True:
            peak = max(peak, status_kb(proc.pid, "VmRSS"))
            method, _props, msg = ch.basic_get(notify, auto_ack=True)
            # The websocket notification that the report is done (the report's other
            # notifications, e.g. to the audit channel, are passed over).
            if method is not None and "notify" in json.loads(msg)[1]:
                kwargs = json.loads(msg)[1]
                break
            if time.time() - t > 1800 or proc.poll() is not None:
                raise SystemExit("no finished notification")
            time.sleep(0.05)
        report_s = time.time() - t
        out["report_s"] = round(report_s, 1)
        # Who was busy meanwhile: CPU seconds of the worker, the store (when it runs here) and
        # RabbitMQ, and the machine's busy share of its cores.
        spent = {name: meter() for name, meter in meters.items()}
        out["report_cpu_s"] = {name: None if cpu is None else round(cpu, 1)
                               for name, cpu in spent.items()}
        out["report_cpu_s"]["machine_busy"] = round(machine_busy(busy0), 2)
        # Counted after the clocks stopped: on SecantusDB a count is a scan of its own.
        stored = rep["big_general"].count_documents({})
        out["rows_stored_when_notified"] = stored
        out["notification"] = kwargs["notify"]
        out["peak_rss_sampled_mb"] = round(peak / 1024, 1)
        out["peak_rss_vmhwm_mb"] = round(status_kb(proc.pid, "VmHWM") / 1024, 1)
        assert stored == a.n, (f"finished with {stored} of {a.n} rows stored: {kwargs}\n"
                               + open(log.name).read()[-3000:])
        out["report_rows_per_s"] = round(a.n / report_s)
        # The ceiling: what the report reads (the inventory) and what it writes (its rows), each
        # by a plain client.
        ceiling_store_cpu = cpu_meter(store)
        t = time.time()
        read = sum(1 for _ in inv["servers"].find({"roles._id": OWNER}))
        read_s = time.time() - t
        out["ceiling_read_s"] = round(read_s, 1)
        assert read == a.n
        # ... and what the finish task reads back for the columns and charts.
        t = time.time()
        rows = list(rep["big_general"].find())
        read_back_s = time.time() - t
        out["ceiling_read_back_s"] = round(read_back_s, 1)
        t = time.time()
        for i in range(0, len(rows), a.qtd):
            rep["ceiling"].insert_many(rows[i:i + a.qtd], ordered=False)
        ceiling_s = time.time() - t
        out["ceiling_insert_s"] = round(ceiling_s, 1)
        out["ceiling_rows_per_s"] = round(len(rows) / ceiling_s)
        out["ceiling_read_and_insert_rows_per_s"] = round(
            len(rows) / (ceiling_s + read_s))
        out["report_vs_read_and_insert"] = round(
            out["report_rows_per_s"] / out["ceiling_read_and_insert_rows_per_s"], 2)
        store_s = ceiling_s + read_s + read_back_s
        spent = ceiling_store_cpu()
        out["ceiling_store_cpu_s"] = None if spent is None else round(spent, 1)
        out["ceiling_read_insert_read_back_rows_per_s"] = round(len(rows) / store_s)
        out["report_vs_read_insert_read_back"] = round(store_s / report_s, 2)
        out["report_vs_insert_ceiling"] = round(out["report_rows_per_s"] / out["ceiling_rows_per_s"], 2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for q in [queue, notify, dead] + [f"{prefix}_{i}" for i in range(28)]:
            ch.queue_delete(q)
        for x in [queue, dead, f"{prefix}_delivery"] + [f"{prefix}_{i}" for i in range(28)]:
            ch.exchange_delete(x)
        conn.close()
        client.drop_database(inv.name)
        client.drop_database(rep.name)
        os.unlink(log.name)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
