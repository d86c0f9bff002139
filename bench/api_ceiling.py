#!/usr/bin/env python3
"""maestro-api's enqueue rate against the broker's publishing ceiling, side by side in one run.

For each queue type (classic, quorum) and each round, in turn:
  raw      ../shared/peers/raw-publish: N persistent messages with publisher confirms, WINDOW in
           flight, each waiting for its own confirm (what one API request does), no HTTP;
           400-byte bodies and no headers;
  celery   bench/ceilings publish-ceiling: the same, with the messages maestro-api sends (Celery
           protocol v2 headers, origin, traceparent, mandatory, the queue's own exchange): the
           broker's ceiling for these messages;
  api      wrk POSTing /tasks/maestro.noop with a valid JWT through the release maestro-api
           (CONNECTIONS connections) for DURATION seconds; each 202 is a message the broker
           confirmed. Afterwards the queue depth must equal the number of 202s.
Both publish to a fresh durable queue of the same type on the same broker. Printed per queue
type: medians of the rates and of the confirm (raw) or request (api) latency p50/p99, the ratios
api/raw and api/celery, and CPU time per 10,000 messages of the publisher (raw, celery: the
process's rusage; api: maestro-api's /proc utime+stime over the wrk run) and of the broker
(RabbitMQ's beam.smp over the same time, when it runs on this machine).

    python bench/api_ceiling.py [--rounds 3] [--duration 15] [--connections 64] [--window 64]

Needs: RabbitMQ on 127.0.0.1:5672, wrk (apt-get install wrk), cargo, pika (the test venv),
the peers at PEERS_DIR (default ../shared/peers). Everything it declares, it deletes.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import pika

from benchlib import broker_pid, cpu_seconds, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def jwt(secret, claims):
    b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
    h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    c = b(json.dumps(claims).encode())
    s = b(hmac.new(secret.encode(), f"{h}.{c}".encode(), hashlib.sha256).digest())
    return f"{h}.{c}.{s}"








def children_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(out):
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return dict(rate=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                p50_ms=ms(lat["50"]), p99_ms=ms(lat["99"]), requests=total,
                non2xx=int(non2xx.group(1)) if non2xx else 0,
                socket_errors=errors.group(1) if errors else None)


class Broker:
    def __init__(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))

    def depth(self, queue):
        return self.conn.channel().queue_declare(queue, passive=True).method.message_count

    def purge(self, queue):
        self.conn.channel().queue_purge(queue)

    def delete(self, name):
        for op in ("queue_delete", "exchange_delete"):
            try:
                ch = self.conn.channel()
                getattr(ch, op)(name)
                ch.close()
            except Exception:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=15, help="seconds of each wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--raw-n", type=int, default=60000, help="messages of each raw-publish run")
    ap.add_argument("--amqp-connections", type=int, default=2)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--queue-types", default="classic,quorum")
    ap.add_argument("--api-bin", help="a maestro-api binary (default: build the release one)")
    ap.add_argument("--celery-bin", help="a publish-ceiling binary (default: build the release one)")
    ap.add_argument("--raw-bin", help="the peers' raw-publish-ceiling (default: build it; 'none': leave it out)")
    a = ap.parse_args()

    raw_bin = a.raw_bin
    if raw_bin is None:
        peers = os.environ.get("PEERS_DIR", os.path.join(ROOT, "..", "shared", "peers"))
        peers_home = os.environ.get("PEERS_HOME", os.path.expanduser("~/.cache/maestro-peers"))
        raw_target = os.path.join(peers_home, "target-raw-publish")
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path",
                        os.path.join(peers, "raw-publish", "Cargo.toml")],
                       env={**os.environ, "CARGO_TARGET_DIR": raw_target}, check=True)
        raw_bin = os.path.join(raw_target, "release", "raw-publish-ceiling")
    if a.api_bin is None or a.celery_bin is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "maestro-api", "-p", "maestro-bench"],
                       cwd=ROOT, check=True)
    celery_bin = a.celery_bin or os.path.join(ROOT, "target", "release", "publish-ceiling")
    api_bin = a.api_bin or os.path.join(ROOT, "target", "release", "maestro-api")
    ceilings = [("raw", raw_bin), ("celery", celery_bin)] if raw_bin != "none" else [("celery", celery_bin)]

    run = uuid.uuid4().hex[:8]
    secret, noauth = f"bench-secret-{run}", "bench-noauth"
    token = jwt(secret, {"noauth": noauth})
    broker = Broker()
    created = []
    api = None
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write('wrk.method = "POST"\nwrk.body = \'{"args":[],"kwargs":{}}\'\n'
              'wrk.headers["Content-Type"] = "application/json"\n'
              f'wrk.headers["Authorization"] = "JWT {token}"\n')
    lua.close()

    def stop_api():
        nonlocal api
        if api and api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(20)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()
        api = None

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results = {}
    beam = broker_pid()
    try:
        for qtype in a.queue_types.split(","):
            api_queue, raw_queue = f"tbench{run}.api.{qtype}", f"tbench{run}.raw.{qtype}"
            celery_queue = f"tbench{run}.celery.{qtype}"
            created += [api_queue, raw_queue, celery_queue]
            port = free_port()
            env = {**os.environ, "MAESTRO_SECRETJWT_PRIVATE": secret, "MAESTRO_NOAUTH": noauth,
                   "MAESTRO_HOST": "127.0.0.1", "MAESTRO_PORT": str(port),
                   "MAESTRO_ROUTES": f"maestro.noop={api_queue}", "MAESTRO_LOG_LEVEL": "warn",
                   "MAESTRO_AMQP_CONNECTIONS": str(a.amqp_connections),
                   "MAESTRO_QUEUE_TYPE": qtype, "MAESTRO_ENABLE_DIAGNOSTICS": "true"}
            api = subprocess.Popen([api_bin], env=env, stdout=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}/tasks/maestro.noop"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            # Warm up: the API connects and declares the queue.
            req = urllib.request.Request(url, data=b'{"args":[],"kwargs":{}}', method="POST", headers={
                "Content-Type": "application/json", "Authorization": f"JWT {token}"})
            urllib.request.urlopen(req, timeout=10).read()
            rows = results[qtype] = {name: [] for name, _ in ceilings} | {"api": []}
            for r in range(a.rounds):
                for name, binary in ceilings:
                    queue = raw_queue if name == "raw" else celery_queue
                    cpu0, b0 = children_cpu(), beam and cpu_seconds(beam)
                    out = subprocess.run([binary, str(a.raw_n), str(a.window)], capture_output=True, text=True,
                                         env={**os.environ, "QUEUE": queue, "QUEUE_TYPE": qtype}, check=True)
                    cpu, bcpu = children_cpu() - cpu0, beam and cpu_seconds(beam) - b0
                    raw = json.loads(out.stdout.strip().splitlines()[-1])
                    if raw["acked"] != a.raw_n:
                        sys.exit(f"{name}: {raw['acked']} of {a.raw_n} confirmed")
                    rows[name].append(dict(rate=raw["rate"], p50_ms=raw["p50_ms"], p99_ms=raw["p99_ms"],
                                           cpu_per_10k_s=round(cpu * 10_000 / a.raw_n, 3),
                                           broker_cpu_per_10k_s=beam and round(bcpu * 10_000 / a.raw_n, 3)))
                    print(json.dumps(dict(queue_type=qtype, round=r + 1, contender=name, **rows[name][-1])), flush=True)

                broker.purge(api_queue)
                cpu0, b0 = cpu_seconds(api.pid), beam and cpu_seconds(beam)
                out = subprocess.run(["wrk", f"-t{a.wrk_threads}", f"-c{a.connections}", f"-d{a.duration}s",
                                      "--latency", "-s", lua.name, url], capture_output=True, text=True, check=True)
                cpu, bcpu = cpu_seconds(api.pid) - cpu0, beam and cpu_seconds(beam) - b0
                w = parse_wrk(out.stdout)
                time.sleep(0.5)
                depth = broker.depth(api_queue)
                ok = w["requests"] - w["non2xx"]
                row = dict(rate=w["rate"], p50_ms=w["p50_ms"], p99_ms=w["p99_ms"],
                           cpu_per_10k_s=round(cpu * 10_000 / max(ok, 1), 3),
                           broker_cpu_per_10k_s=beam and round(bcpu * 10_000 / max(ok, 1), 3), accepted=ok, on_queue=depth,
                           non2xx=w["non2xx"], socket_errors=w["socket_errors"])
                rows["api"].append(row)
                print(json.dumps(dict(queue_type=qtype, round=r + 1, contender="api", **row)), flush=True)
                if depth < ok:
                    sys.exit(f"lost messages: {ok} accepted (202), {depth} on the queue")
            stop_api()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 1
    finally:
        stop_api()
        for q in created:
            broker.delete(q)
        os.unlink(lua.name)

    med = lambda rows, k: statistics.median(x[k] for x in rows)
    print(f"\nmedians of {a.rounds} rounds; api: wrk -c{a.connections} {a.duration}s; raw: window {a.window}, "
          f"{a.raw_n} messages")
    print("queue    contender  enqueues/s  p50 ms  p99 ms  api/it rate  api/it p99  CPU s/10k  broker CPU s/10k")
    summary = {}
    for qtype, rows in results.items():
        api_rate, api_p99 = med(rows["api"], "rate"), med(rows["api"], "p99_ms")
        cpu = lambda name: (med(rows[name], "cpu_per_10k_s"),
                            med(rows[name], "broker_cpu_per_10k_s") if beam else float("nan"))
        s = summary[qtype] = dict(api_rate=api_rate, api_p99_ms=api_p99)
        for name, _ in ceilings:
            rate, p99 = med(rows[name], "rate"), med(rows[name], "p99_ms")
            s.update({f"{name}_rate": rate, f"{name}_p99_ms": p99, f"rate_ratio_vs_{name}": round(api_rate / rate, 2),
                      f"p99_ratio_vs_{name}": round(api_p99 / p99, 2)})
        for name in [c for c, _ in ceilings] + ["api"]:
            own, broker = cpu(name)
            s.update({f"{name}_cpu_per_10k_s": own, f"{name}_broker_cpu_per_10k_s": broker})
            ratios = (f"{s['rate_ratio_vs_' + name]:11.2f}  {s['p99_ratio_vs_' + name]:10.2f}" if name != "api"
                      else f"{'':11}  {'':10}")
            print(f"{qtype:8} {name:9}  {med(rows[name], 'rate'):10.0f}  {med(rows[name], 'p50_ms'):6.1f}"
                  f"  {med(rows[name], 'p99_ms'):6.1f}  {ratios}  {own:9.3f}  {broker:16.3f}")
    print(json.dumps(dict(summary=summary, runs=results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
