#!/usr/bin/env python3
"""Discovery at scale: one `server-list` scan of N EC2 instances served by moto_server.

Starts a moto_server of its own (no default AMIs), runs N instances in one region, stores a
connection as server-app does, starts maestro-worker on queues of its own and sends
`maestro.discovery.scan` with a Celery client. Reports, for the first scan (every item new) and
a second one (nothing changed): seconds, items/s, the AWS calls moto served, the MongoDB
writes the scan reports, and the worker's peak RSS (VmHWM). Beside them, the two ceilings the scan cannot beat, measured in the same run: the same
moto's pages read by a plain boto3 loop (the cloud's rate), and the same documents inserted by
pymongo into a collection with discovery's indexes (the store's raw insert rate), and for
comparison the same documents upserted by unique_id.
Drops its databases, deletes its queues, stops moto and the worker.

usage: discovery_scale.py [--n 10000] [--page 25] [--http-timeout 60]
                          [--worker target/release/maestro-worker]
Needs the test venv (celery, pika, pymongo, boto3, moto), RabbitMQ at AMQP_URL and MongoDB at
MONGODB_URI.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import pika
import pymongo
from bson import ObjectId
from celery import Celery

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
SECRET = "bench-jwt-secret"
ACCESS, KEY = "AKIABENCHDISCOVERY", "bench-secret"
REGION = "us-east-1"


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims, key):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not start")


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def aws_calls(log_path):
    return sum(1 for line in open(log_path) if '"POST / HTTP' in line)


def main():
    # A SIGTERM still cleans up (the `finally` below), and a second one does not stop that.
    def terminated(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit("terminated")

    signal.signal(signal.SIGTERM, terminated)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    # moto counts MaxResults in reservations (of 20 instances here), AWS in instances: 25
    # reservations are 500 instances, EC2's page of 500.
    ap.add_argument("--page", type=int, default=25, help="--scan-qtd (EC2 MaxResults)")
    ap.add_argument("--http-timeout", type=int, default=60,
                    help="worker's seconds per AWS request (moto renders big pages slowly)")
    ap.add_argument("--worker", default="target/release/maestro-worker")
    a = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"disc{run}."))
    queue, notify = f"disc{run}", f"disc{run}.notify"
    prefix, dead = f"disc{run}_delayed", f"disc{run}.dead"
    client = pymongo.MongoClient(MONGODB_URI)
    db, ceiling_db = client[f"disc{run}"], client[f"disc{run}_c"]
    procs = []
    out = {"instances": a.n, "page": a.page}
    try:
        port = free_port()
        moto_log = tmp / "moto.log"
        moto = subprocess.Popen(
            [str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
             "-p", str(port)], stdout=open(moto_log, "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"})
        procs.append(moto)
        wait_port(port, moto, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id=ACCESS, aws_secret_access_key=KEY)
        t = time.time()
        left = a.n
        # Reservations of 20: moto counts MaxResults in reservations, AWS in instances.
        while left:
            k = min(left, 20)
            ec2.run_instances(ImageId="ami-12c6146b", MinCount=k, MaxCount=k,
                              InstanceType="t3.micro", TagSpecifications=[{
                                  "ResourceType": "instance",
                                  "Tags": [{"Key": "environment", "Value": "bench"}]}])
            left -= k
        out["seed_s"] = round(time.time() - t, 1)
        owner = ObjectId()
        conn = {"_id": ObjectId(), "name": "bench", "provider": "AWS", "service": "iam_aws",
                "dc": "bench-dc", "dc_id": str(ObjectId()), "regions": [f"{REGION} (N. Virginia)"],
                "conn": hs256({"access": ACCESS, "secret": KEY}, SECRET), "status": "enabled",
                "active": True, "roles": [{"_id": owner, "refs": "users", "role": 7}],
                "process": {}}
        db.connections.insert_one(conn)
        backend = f"{MONGODB_URI.rstrip('/')}/{db.name}"
        worker_log = tmp / "worker.log"
        worker = subprocess.Popen(
            [a.worker, "-Q", queue, "--delay-prefix", prefix, "--dead-letter-exchange", dead,
             "--dead-letter-queue", dead, "--routes", f"maestro.notify={notify}",
             "--result-backend", backend, "--mongo-uri", MONGODB_URI,
             "--mongo-database", db.name, "--secretjwt", SECRET, "--aws-endpoint", endpoint,
             "--scan-qtd", str(a.page), "--http-timeout", str(a.http_timeout)],
            stdout=open(worker_log, "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "MAESTRO_EGRESS_ALLOW": "127.0.0.1"})
        procs.append(worker)
        app = Celery(f"disc-bench-{run}", broker=BROKER_URL, backend=backend)
        end = time.time() + 60
        while b"worker_ready" not in worker_log.read_bytes() and time.time() < end:
            if worker.poll() is not None:
                sys.exit("worker exited:\n" + worker_log.read_text()[-2000:])
            time.sleep(0.2)
        for label in ("first", "unchanged"):
            calls_before = aws_calls(moto_log)
            t = time.time()
            r = app.send_task("maestro.discovery.scan", queue=queue, kwargs={
                "provider": "aws", "conn_id": str(conn["_id"]), "task": "server-list"})
            result = r.get(timeout=3600, propagate=False)
            secs = time.time() - t
            if r.state != "SUCCESS":
                sys.exit(f"scan failed: {r.result}\n" + worker_log.read_text()[-3000:])
            out[label] = {"s": round(secs, 2), "items_per_s": round(result["seen"] / secs),
                          "seen": result["seen"], "aws_calls": aws_calls(moto_log) - calls_before,
                          "pages": result["pages"], "mongo_upserts": result["written"],
                          "worker_peak_rss_mib": round(vm_hwm_kb(worker.pid) / 1024, 1)}
        app.close()
        # The same MongoDB's ceilings for the first scan's writes, measured right after it: the
        # stored servers written again by pymongo in batches of --translate-qtd (50) into
        # collections with the indexes discovery makes, as plain inserts (the store's raw
        # insert rate) and as upserts by unique_id (what a writer that does not look first
        # would send).
        docs = list(db.servers.find({}, {"_id": 0}))
        for name in ("servers", "upserted"):
            for field in ("unique_id", "accountant", "ipv4_private"):
                ceiling_db[name].create_index(field)
        t = time.time()
        for i in range(0, len(docs), 50):
            ceiling_db.servers.insert_many([dict(d) for d in docs[i:i + 50]], ordered=False)
        secs = time.time() - t
        out["mongo_insert_ceiling"] = {"s": round(secs, 2), "items_per_s": round(len(docs) / secs)}
        t = time.time()
        for i in range(0, len(docs), 50):
            ceiling_db.upserted.bulk_write([
                pymongo.UpdateOne({"unique_id": d["unique_id"]}, {"$set": d}, upsert=True)
                for d in docs[i:i + 50]], ordered=False)
        secs = time.time() - t
        out["mongo_upsert_ceiling"] = {"s": round(secs, 2), "items_per_s": round(len(docs) / secs)}
        # The cloud's ceiling: the same pages read by boto3 from the same moto, nothing else.
        t = time.time()
        listed, token = 0, None
        while True:
            kw = {"MaxResults": max(5, min(a.page, 1000))}
            if token:
                kw["NextToken"] = token
            page = ec2.describe_instances(**kw)
            listed += sum(len(r["Instances"]) for r in page["Reservations"])
            token = page.get("NextToken")
            if not token:
                break
        secs = time.time() - t
        out["aws_ceiling"] = {"s": round(secs, 2), "items_per_s": round(listed / secs)}
        bound = min(out["mongo_insert_ceiling"]["items_per_s"], out["aws_ceiling"]["items_per_s"])
        out["first_vs_insert_ceiling"] = round(
            out["first"]["items_per_s"] / out["mongo_insert_ceiling"]["items_per_s"], 2)
        out["first_vs_slower_ceiling"] = round(out["first"]["items_per_s"] / bound, 2)
        print(json.dumps(out, indent=1))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        client.drop_database(db.name)
        client.drop_database(ceiling_db.name)
        client.close()
        c = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = c.channel()
        for q in [queue, notify, dead] + [f"{prefix}_{i}" for i in range(28)]:
            ch.queue_delete(q)
        for x in [queue, notify, dead, f"{prefix}_delivery"] + [f"{prefix}_{i}" for i in range(28)]:
            ch.exchange_delete(x)
        c.close()


if __name__ == "__main__":
    main()
