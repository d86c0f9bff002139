#!/usr/bin/env python3
"""Drawing Maestro's analytics map of N applications: the task's time and the worker's peak RSS,
against the store's time for the reads the task makes.

Seeds a deterministic inventory in a database of its own: one owner; N applications in tiers
(a few entry applications, CDN and gateways, then services down to the stores), each depending
on 1-3 later ones (the next tier mostly, the one after sometimes) except the last tier's stores,
which depend on nothing; every tenth application also depends on an earlier one that depends on
it, so the map has cycles; one system whose `entry` lists the first tier (the roots) and names
one client; one server per application (`applications` linking it, `datacenters.provider`).
Starts an HTTP stand-in for Maestro's analytics-front in this process (it accepts `POST /graphs`
form-urlencoded `payload`/`total` with the graph's JWT, checks the token and records the sizes)
and one maestro-worker on queues of its own, then, `--rounds` times, writes a fresh graph
document (`status: process`) and sends `maestro.analytics.graph` with a Celery client, timing
send -> result. Reports per round: that wall time, the task's own run time (the worker's
`maestro_worker_task_runtime_seconds`), the worker's peak RSS (VmHWM; and its RSS before the
first task), the SVG's bytes (as the task reports them and as the stand-in received them), the
applications and edges drawn, and the graph document's final status. Then the store's side: a
plain pymongo client makes the reads the task makes (the graph, the systems, the dependency walk
level by level with the same filters and projections, the servers of every application), and
the task's time is shown against that. The last line is a JSON summary (medians, max RSS).
Stops the worker and the stand-in, deletes the queues the worker declared and the database.

usage: analytics_map.py [--n 500] [--rounds 3] [--worker target/release/maestro-worker]
                        [--timeout 600]
Needs the test venv (celery, pika, pymongo), RabbitMQ at AMQP_URL and MongoDB at MONGODB_URI.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pika
import pymongo
from bson import ObjectId
from celery import Celery

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import delete_worker_topology, free_port  # noqa: E402

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017")
TASK = "maestro.analytics.graph"
SECRET, NOAUTH = "bench-jwt-private", "bench-noauth"
OWNER = ObjectId("5f00000000000000000000c1")
ROLES = [{"_id": OWNER, "refs": "users", "role": 7}]
# The task's limits (catalogue/src/analytics/mod.rs), for the walk the store side repeats.
DEPTH_MAX, APPS_MAX, SYSTEMS_MAX = 40, 2000, 1000
# Families by tier, front-facing first (the task ranks them so).
TIERS = [["CDN", "ApiGateway", "Loadbalance"], ["Application", "Serverless"],
         ["Application", "ServiceDiscovery"], ["Application", "Auth"], ["Application", "Monitor"],
         ["Broker", "Cache"], ["ObjectStorage", "Logs"], ["Database", "Cache", "Broker"]]
PROVIDERS = ["AWS", "Azure", "GCP", "DigitalOcean", "OpenStack"]
ROOTS = 4


def oid(prefix, i):
    return ObjectId(f"{prefix}{i:022x}")


def inventory(n, seed=7):
    """The applications, the system and the servers, the same for the same n; and the edges
    (distinct dependencies) the map should draw."""
    rng = random.Random(seed)
    # Tier sizes: the roots, then at most three times the tier above (every application has
    # a parent there and none more than three children), the rest split evenly.
    sizes, left = [min(ROOTS, n)], n - min(ROOTS, n)
    for t in range(1, len(TIERS)):
        share = -(-left // (len(TIERS) - t))
        sizes.append(left if t == len(TIERS) - 1 else min(3 * sizes[-1], share))
        left -= sizes[-1]
    tier_of = [t for t, size in enumerate(sizes) for _ in range(size)]
    tiers = [[i for i in range(n) if tier_of[i] == t] for t in range(len(TIERS))]
    app_id = [oid("6a", i) for i in range(n)]
    deps = [[] for _ in range(n)]
    # Every application below the roots has a parent in the tier above, so all are reached.
    for t in range(1, len(TIERS)):
        for k, i in enumerate(tiers[t]):
            deps[tiers[t - 1][k % len(tiers[t - 1])]].append(i)
    # 1-3 later ones in all: the next tier mostly, the one after sometimes.
    for i in range(n):
        t = tier_of[i]
        later = [j for s in tiers[t + 1:t + 2] for j in s]
        further = [j for s in tiers[t + 2:t + 3] for j in s]
        want = rng.randint(1, 3)
        tries = 0
        while later and len(set(deps[i])) < want and tries < 20:
            pool = further if further and rng.random() < 0.2 else later
            deps[i].append(rng.choice(pool))
            tries += 1
    # Every tenth depends on an earlier one that depends on it: a cycle.
    for i in range(10, n, 10):
        parents = [p for p in range(i) if i in deps[p]]
        deps[i].append(parents[0] if parents else i - 1)
    deps = [list(dict.fromkeys(d)) for d in deps]
    system = {"_id": oid("6c", 1), "name": "shop", "active": True, "roles": ROLES,
              "clients": [{"_id": oid("6d", 1), "name": "ACME"}],
              "entry": [{"_id": app_id[i], "name": f"app-{i:04d}"} for i in tiers[0]]}
    apps = []
    for i in range(n):
        fams = TIERS[tier_of[i]]
        apps.append({
            "_id": app_id[i], "name": f"app-{i:04d}", "family": fams[i % len(fams)],
            "active": True, "roles": ROLES,
            "system": [{"_id": system["_id"], "name": system["name"]}],
            "datacenters": {"provider": PROVIDERS[i % len(PROVIDERS)], "name": "dc-1"},
            "deps": [{"_id": app_id[j], "name": f"app-{j:04d}",
                      **({"endpoint": f"https://app-{j:04d}.internal:8443"} if (i + j) % 2 else {})}
                     for j in deps[i]],
        })
    servers = [{"_id": oid("6b", i), "hostname": f"host-{i:04d}", "active": True, "roles": ROLES,
                "applications": [{"_id": app_id[i], "name": f"app-{i:04d}"}],
                "datacenters": {"provider": PROVIDERS[(i + 1) % len(PROVIDERS)], "name": "dc-1"}}
               for i in range(n)]
    edges = sum(len(d) for d in deps)
    return apps, system, servers, edges


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_claims(token):
    """The claims of an HS256 token signed with SECRET, or None."""
    try:
        head, body, sig = token.split(".")
        want = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, b64url_decode(sig)):
            return None
        return json.loads(b64url_decode(body))
    except ValueError:
        return None


class FrontStandIn(http.server.ThreadingHTTPServer):
    """Stands in for Maestro's analytics-front: `POST /graphs` with the map as form fields
    `payload` (the SVG) and `total`, authorized by `JWT <token>` (Maestro's graph token: the
    private secret, `token` = noauth, `graph_id`, `owner_id`). Records what each call carried;
    a call without a valid token is answered 401, as the real service does."""

    daemon_threads = True

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), FrontHandler)


class FrontHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        claims = jwt_claims(auth[4:]) if auth.startswith("JWT ") else None
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        payload = form.get("payload", [""])[0]
        rec = {"path": self.path, "body_bytes": len(body),
               "payload_bytes": len(payload.encode()), "total": form.get("total", [None])[0],
               "graph_id": (claims or {}).get("graph_id"),
               "jwt_ok": bool(claims and claims.get("token") == NOAUTH
                              and claims.get("owner_id") == str(OWNER)),
               "svg": payload.lstrip().startswith("<svg") or payload.lstrip().startswith("<?xml")}
        with self.server.lock:
            self.server.received.append(rec)
        ok = self.path == "/graphs" and rec["jwt_ok"]
        self.send_response(200 if ok else 401)
        answer = json.dumps({"ok": ok}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_):
        pass


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def task_runtime(port):
    """(count, sum of seconds) of the worker's `maestro_worker_task_runtime_seconds` for the
    map task, or None while its metrics do not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    count = total = 0.0
    for line in text.splitlines():
        if f'task="{TASK}"' not in line:
            continue
        if line.startswith("maestro_worker_task_runtime_seconds_count"):
            count += float(line.split()[-1])
        elif line.startswith("maestro_worker_task_runtime_seconds_sum"):
            total += float(line.split()[-1])
    return count, total


def any_of(ids):
    """The task's id match: ObjectIds and their hex strings alike."""
    return [ObjectId(i) for i in ids] + [str(i) for i in ids]


def id_text(v):
    if isinstance(v, ObjectId):
        return str(v)
    return v if isinstance(v, str) and v else None


def store_reads(db, graph_id):
    """The reads the task makes, by a plain pymongo client: seconds, documents read, and the
    applications the walk reaches (what the map should draw)."""
    def scoped(f):
        return {**f, "roles._id": {"$in": any_of([OWNER])}, "active": {"$ne": False}}

    t = time.perf_counter()
    docs = 0
    assert db.graphs.find_one({"_id": graph_id, "roles._id": {"$in": any_of([OWNER])}},
                              {"_id": 1}) is not None
    systems = list(db.systems.find(scoped({}), {"_id": 1, "name": 1, "entry": 1, "clients": 1})
                   .sort("_id", 1).limit(SYSTEMS_MAX))
    docs += 1 + len(systems)
    roots = list(dict.fromkeys(id_text(e.get("_id")) for s in systems for e in s.get("entry", [])))
    seen, frontier, found = set(roots), roots, []
    for _ in range(DEPTH_MAX + 1):
        if not frontier:
            break
        got = list(db.applications.find(
            scoped({"_id": {"$in": any_of(frontier)}}),
            {"_id": 1, "name": 1, "family": 1, "deps": 1, "system": 1, "datacenters.provider": 1}))
        docs += len(got)
        nxt = []
        for d in got:
            found.append(id_text(d["_id"]))
            for dep in d.get("deps", []):
                dep = id_text(dep.get("_id"))
                if dep and len(seen) < APPS_MAX and dep not in seen:
                    seen.add(dep)
                    nxt.append(dep)
        frontier = nxt
    servers = list(db.servers.find(scoped({"applications._id": {"$in": any_of(found)}}),
                                   {"applications._id": 1, "datacenters.provider": 1}))
    docs += len(servers)
    return time.perf_counter() - t, docs, len(found)


def main():
    # A SIGTERM still cleans up (the `finally` below), and a second one does not stop that.
    def terminated(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit("terminated")

    signal.signal(signal.SIGTERM, terminated)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500, help="applications on the map")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", default="target/release/maestro-worker")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one map may take")
    a = ap.parse_args()
    if a.n < 1 or a.rounds < 1:
        ap.error("--n and --rounds must be at least 1")
    run = uuid.uuid4().hex[:8]
    queue, notify = f"amap{run}", f"amap{run}.notify"
    prefix, dead = f"amap{run}_delayed", f"amap{run}.dead"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"amap{run}."))
    worker_log = tmp / "worker.log"
    client = pymongo.MongoClient(MONGODB_URI)
    db = client[f"amap{run}"]
    backend = f"{MONGODB_URI.rstrip('/')}/{db.name}"
    out = {"apps_seeded": a.n, "rounds": a.rounds, "worker": a.worker}
    worker = app = front = None
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    failed = None
    try:
        apps, system, servers, edges = inventory(a.n)
        t = time.perf_counter()
        db.applications.insert_many(apps)
        db.systems.insert_one(system)
        db.servers.insert_many(servers)
        out["seed_s"] = round(time.perf_counter() - t, 2)
        out["edges_seeded"] = edges
        out["roots"] = len(system["entry"])

        front = FrontStandIn()
        threading.Thread(target=front.serve_forever, daemon=True).start()
        front_uri = f"http://127.0.0.1:{front.server_address[1]}"
        # The notifications are routed to a queue of this run's (nothing consumes it).
        ch.queue_declare(notify, durable=True)
        metrics = free_port()
        worker = subprocess.Popen(
            [a.worker, "-Q", queue, "-n", f"amap{run}@%h", "--delay-prefix", prefix,
             "--dead-letter-exchange", dead, "--dead-letter-queue", dead,
             "--routes", f"maestro.notify={notify},{TASK}={queue}",
             "--result-backend", backend, "--mongo-uri", MONGODB_URI,
             "--mongo-database", db.name, "--secret-jwt-private", SECRET, "--noauth", NOAUTH,
             "--analytics-front-uri", front_uri, "--metrics-addr", f"127.0.0.1:{metrics}"],
            stdout=open(worker_log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        end = time.time() + 60
        while b"worker_ready" not in worker_log.read_bytes():
            if worker.poll() is not None or time.time() > end:
                raise SystemExit("worker did not become ready:\n" + worker_log.read_text()[-3000:])
            time.sleep(0.1)
        while task_runtime(metrics) is None:
            if time.time() > end:
                raise SystemExit("worker metrics do not answer")
            time.sleep(0.1)
        out["worker_rss_before_mib"] = round(status_kb(worker.pid, "VmRSS") / 1024, 1)
        out["worker_hwm_before_mib"] = round(status_kb(worker.pid, "VmHWM") / 1024, 1)
        app = Celery(f"amap-bench-{run}", broker=BROKER_URL, backend=backend)
        app.conf.update(broker_connection_retry_on_startup=True)

        rounds = []
        for r in range(a.rounds):
            graph_id = ObjectId()
            db.graphs.insert_one({"_id": graph_id, "roles": ROLES, "status": "process",
                                  "active": True, "name": f"bench map {r + 1}"})
            before = task_runtime(metrics)
            received = len(front.received)
            t = time.perf_counter()
            res = app.send_task(TASK, queue=queue, kwargs={
                "graph_id": str(graph_id), "owner_id": str(OWNER), "kind": "bussiness",
                "clients": [], "systems": [], "apps": []})
            result = res.get(timeout=a.timeout, propagate=False, interval=0.01)
            wall = time.perf_counter() - t
            row = {"round": r + 1, "state": res.state, "task_s": round(wall, 3)}
            # The run time is counted when the task ends; the result may be stored just before.
            end = time.time() + 10
            after = task_runtime(metrics)
            while (after is None or after[0] <= before[0]) and time.time() < end:
                time.sleep(0.05)
                after = task_runtime(metrics)
            if after and after[0] > before[0]:
                row["runtime_s"] = round(after[1] - before[1], 3)
            row["worker_hwm_mib"] = round(status_kb(worker.pid, "VmHWM") / 1024, 1)
            row["worker_rss_after_mib"] = round(status_kb(worker.pid, "VmRSS") / 1024, 1)
            doc = db.graphs.find_one({"_id": graph_id}) or {}
            row["graph_status"] = doc.get("status")
            row["graph_msg"] = doc.get("msg")
            if isinstance(result, dict):
                for k in ("apps", "edges", "missing", "width", "height", "svg_bytes"):
                    row[k] = result.get(k)
            else:
                row["error"] = repr(result)
            calls = [c for c in front.received[received:] if c["graph_id"] == str(graph_id)]
            row["front_calls"] = len(front.received) - received
            if calls:
                row["front_payload_bytes"] = calls[-1]["payload_bytes"]
                row["front_body_bytes"] = calls[-1]["body_bytes"]
                row["front_total"] = calls[-1]["total"]
                row["front_jwt_ok"] = calls[-1]["jwt_ok"]
            rounds.append(row)
            print(json.dumps(row), flush=True)
            if res.state != "SUCCESS" or row["graph_status"] != "finished":
                failed = row
                break
        out["runs"] = rounds

        # The store's side: the same reads by pymongo, as many times.
        reads = []
        for _ in range(len(rounds)):
            secs, docs, reached = store_reads(db, graph_id)
            reads.append(secs)
        out["store_reads_s"] = [round(s, 3) for s in reads]
        out["store_read_docs"] = docs
        out["apps_expected"] = reached
        ok = [r for r in rounds if r["state"] == "SUCCESS" and r["graph_status"] == "finished"]
        summary = {"apps": a.n, "rounds": len(rounds), "succeeded": len(ok),
                   "max_worker_hwm_mib": max(r["worker_hwm_mib"] for r in rounds),
                   "worker_rss_before_mib": out["worker_rss_before_mib"],
                   "median_store_reads_s": round(statistics.median(reads), 3)}
        if ok:
            med = statistics.median(r["task_s"] for r in ok)
            summary["median_task_s"] = round(med, 3)
            runtimes = [r["runtime_s"] for r in ok if "runtime_s" in r]
            if runtimes:
                summary["median_runtime_s"] = round(statistics.median(runtimes), 3)
            summary["svg_bytes"] = ok[-1]["svg_bytes"]
            summary["apps_drawn"] = ok[-1]["apps"]
            summary["edges_drawn"] = ok[-1]["edges"]
            summary["task_vs_store_reads"] = round(med / statistics.median(reads), 1)
        out["summary"] = summary
        if failed:
            print(f"\nFAILED in round {failed['round']}: {failed['state']}, graph "
                  f"{failed['graph_status']!r}: {failed.get('error') or failed.get('graph_msg')}",
                  flush=True)
        else:
            print(f"\n{a.n} applications, {len(rounds)} round(s): task median "
                  f"{summary['median_task_s']} s (own run time {summary.get('median_runtime_s')} s),"
                  f" worker RSS {summary['worker_rss_before_mib']} MiB before, "
                  f"{summary['max_worker_hwm_mib']} MiB peak; pymongo's reads "
                  f"{summary['median_store_reads_s']} s (the task takes "
                  f"{summary['task_vs_store_reads']}x)", flush=True)
        if failed:
            out["worker_log_tail"] = worker_log.read_text(errors="replace")[-4000:]
    finally:
        if app is not None:
            app.close()
        if worker is not None:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            except ProcessLookupError:
                pass
        if front is not None:
            front.shutdown()
            front.server_close()
        try:
            if ch.is_closed:
                ch = conn.channel()
            delete_worker_topology(ch, [queue, notify], dead, prefix)
            conn.close()
        finally:
            client.drop_database(db.name)
            client.close()
            if failed is None:
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()
            else:
                print(f"worker log kept at {worker_log}", file=sys.stderr)
    print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
