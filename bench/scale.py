#!/usr/bin/env python3
"""How the drain rate grows with worker processes and with queues per process, in one run.

Each configuration gets N persistent Celery protocol-v2 `maestro.noop` messages (no result)
prefilled into queues of its own, then its workers start and drain them:
  workers W   W maestro-worker processes consuming one queue (1, 2, 3, 4 by default);
  queues Q    one maestro-worker process consuming Q queues, N/Q messages in each (1, 10, 100).
The rate is read from the workers' own `maestro_worker_acks_total` (summed): steady = 10% ->
90% of N acknowledged, whole = first poll that answered -> N. Beside it: the CPU time per
10,000 messages of the workers (/proc, summed) and of the broker (RabbitMQ's beam.smp, when it
runs on this machine), which show which side a configuration is bound by. Configurations are
interleaved over the rounds; medians are printed last. Deletes every queue and exchange its
workers declared and stops every process it started.

usage: scale.py [--n 20000] [--rounds 3] [--workers 1,2,3,4] [--queues 1,10,100]
Needs the test venv (pika) and RabbitMQ at AMQP_URL.
"""
import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time
import uuid

import pika

from benchlib import (broker_pid, cpu_meter, cpu_seconds, declare_task_queue,
                      delete_worker_topology, free_port, noop_message, worker_acks)

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
ROOT = pathlib.Path(__file__).resolve().parents[1]












def run_config(args, run, label, workers, queues, beam):
    """Prefills, drains with `workers` processes over `queues` queues; returns the figures."""
    tag = f"sc{run}{label}"
    names = [f"{tag}.{i}" for i in range(queues)]
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    procs = []
    try:
        for q in names:
            declare_task_queue(ch, q)
        for i in range(args.n):
            q = names[i % queues]
            _, props, body = noop_message("scale-bench")
            ch.basic_publish(q, q, body, props)
        # Unconfirmed publishing: wait until the broker holds all of them.
        deadline = time.monotonic() + 120
        while sum(ch.queue_declare(q, passive=True).method.message_count for q in names) < args.n:
            if time.monotonic() > deadline:
                sys.exit("the prefill did not arrive")
            time.sleep(0.1)
        ports = []
        broker_cpu = cpu_meter(beam)
        for w in range(workers):
            port = free_port()
            ports.append(port)
            procs.append(subprocess.Popen(
                [args.worker, "-Q", ",".join(names), "-n", f"{tag}-{w}@%h", "--enable-diagnostics", "true",
                 "--metrics-addr", f"127.0.0.1:{port}", "--delay-prefix", f"{tag}_delayed",
                 "--dead-letter-exchange", f"{tag}.dead", "--dead-letter-queue", f"{tag}.dead",
                 "--without-heartbeat", "--remote-control", "false", *args.worker_args],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "CELERY_BROKER_URL": BROKER_URL}))
        started, marks = None, {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            counts = [worker_acks(p) for p in ports]
            now = time.monotonic()
            if any(c is not None for c in counts):
                started = started or now
                done = sum(c or 0 for c in counts)
                for frac in (0.1, 0.9, 1.0):
                    if frac not in marks and done >= frac * args.n:
                        marks[frac] = now
                if 1.0 in marks:
                    break
            if any(p.poll() is not None for p in procs):
                sys.exit(f"{label}: a worker exited")
            time.sleep(0.02)
        else:
            sys.exit(f"{label}: not drained in {args.timeout} s")
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
        broker_cpu = broker_cpu()
        # Polls are 20 ms apart: a window shorter than one poll counts as one poll.
        tick = 0.02
        return dict(config=label, steady=round(0.8 * args.n / max(marks[0.9] - marks[0.1], tick)),
                    whole=round(args.n / max(marks[1.0] - started, tick)),
                    worker_cpu_per_10k_s=round(worker_cpu * 10_000 / args.n, 3),
                    broker_cpu_per_10k_s=beam and round(broker_cpu * 10_000 / args.n, 3))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        delete_worker_topology(ch, names, f"{tag}.dead", f"{tag}_delayed")
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", default="1,2,3,4")
    p.add_argument("--queues", default="1,10,100")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--worker", default=str(ROOT / "target" / "release" / "maestro-worker"))
    p.add_argument("worker_args", nargs="*")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:6]
    beam = broker_pid()
    configs = [(f"w{w}", w, 1) for w in map(int, args.workers.split(","))]
    configs += [(f"q{q}", 1, q) for q in map(int, args.queues.split(",")) if q != 1 or "w1" not in
                {c[0] for c in configs}]
    runs = []
    for r in range(args.rounds):
        for label, workers, queues in configs:
            res = run_config(args, run, f"{label}r{r}", workers, queues, beam)
            res.update(config=label, workers=workers, queues=queues, round=r + 1)
            runs.append(res)
            print(json.dumps(res), flush=True)
    print(f"\nmedians of {args.rounds} rounds, N={args.n}")
    print("workers  queues  steady msg/s  whole msg/s  worker CPU s/10k  broker CPU s/10k")
    summary = {}
    for label, workers, queues in configs:
        rs = [x for x in runs if x["config"] == label]
        med = lambda k: statistics.median(x[k] for x in rs) if rs[0][k] is not None else float("nan")
        summary[label] = dict(workers=workers, queues=queues, steady=med("steady"), whole=med("whole"),
                              worker_cpu_per_10k_s=med("worker_cpu_per_10k_s"),
                              broker_cpu_per_10k_s=med("broker_cpu_per_10k_s"))
        print(f"{workers:7}  {queues:6}  {med('steady'):12,.0f}  {med('whole'):11,.0f}"
              f"  {med('worker_cpu_per_10k_s'):16.3f}  {med('broker_cpu_per_10k_s'):16.3f}")
    print(json.dumps(dict(summary=summary, runs=runs)))


if __name__ == "__main__":
    main()
