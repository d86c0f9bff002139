#!/usr/bin/env python3
"""CPU time of one drain contender, per 10,000 messages, read from /proc.

    cputime.py OUT_DIR NAME COMMAND      run COMMAND (sh -c) as a child and record its CPU
    cputime.py --summary OUT_DIR         print the medians per contender

bench/run.sh wraps every contender of the drain benchmark in the first form, so the harness
starts, watches and stops it as before (it signals the whole process group: the child exits,
this wrapper outlives it to read its CPU). While the child runs, the queue's ready count
(`QUEUE`, from the harness) and the child's utime+stime (/proc/PID/stat, the process and all
its threads) are sampled every 20 ms; the CPU spent while the queue went from 90% to 10% full
is the steady figure, comparable across contenders whatever their start-up costs. The whole
figure is the child's rusage when it exited (start-up, drain, idle tail and shutdown). One JSON
file per run goes to OUT_DIR.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_seconds  # noqa: E402 (beside this script)


def proc_cpu(pid):
    """The child's CPU seconds, or None once it is gone."""
    try:
        return cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return None


def record(out_dir, name, command):
    import pika

    queue, n = os.environ["QUEUE"], int(os.environ.get("N", "0"))
    # The harness stops the contender by signalling its process group; the child obeys, this
    # wrapper waits for it.
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    child = subprocess.Popen(["sh", "-c", command], preexec_fn=lambda: [
        signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)])
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    at90 = at10 = None
    while child.poll() is None:
        try:
            ready = ch.queue_declare(queue, passive=True).method.message_count
        except Exception:  # the queue is the harness's; it may be gone at the very end
            break
        cpu = proc_cpu(child.pid)
        if cpu is not None and n:
            if at90 is None and ready <= 0.9 * n:
                at90 = (ready, cpu)
            if at10 is None and ready <= 0.1 * n:
                at10 = (ready, cpu)
        if at10 is not None:
            break
        time.sleep(0.02)
    try:
        conn.close()
    except Exception:
        pass
    _, status, usage = os.wait4(child.pid, 0)
    steady = None
    if at90 and at10 and at90[0] > at10[0]:
        msgs = at90[0] - at10[0]
        steady = round((at10[1] - at90[1]) * 10_000 / msgs, 3)
    result = dict(contender=name, n=n, whole_cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
                  whole_cpu_per_10k_s=round((usage.ru_utime + usage.ru_stime) * 10_000 / n, 3) if n else None,
                  steady_cpu_per_10k_s=steady, max_rss_kb=usage.ru_maxrss)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}-{uuid.uuid4().hex[:8]}.json"), "w") as f:
        json.dump(result, f)
    return os.waitstatus_to_exitcode(status) if status else 0


def summary(out_dir):
    runs = {}
    for fn in sorted(os.listdir(out_dir)):
        if fn.endswith(".json"):
            with open(os.path.join(out_dir, fn)) as f:
                r = json.load(f)
            runs.setdefault(r["contender"], []).append(r)
    print("contender            runs  steady CPU s/10k msgs  whole-life CPU s/10k msgs")
    out = {}
    for name, rs in runs.items():
        steady = [r["steady_cpu_per_10k_s"] for r in rs if r["steady_cpu_per_10k_s"] is not None]
        whole = [r["whole_cpu_per_10k_s"] for r in rs if r["whole_cpu_per_10k_s"] is not None]
        out[name] = dict(runs=len(rs), steady_cpu_per_10k_s=statistics.median(steady) if steady else None,
                         whole_cpu_per_10k_s=statistics.median(whole) if whole else None)
        s = out[name]
        print(f"{name:20} {len(rs):4}  {s['steady_cpu_per_10k_s'] if s['steady_cpu_per_10k_s'] is not None else '-':>21}"
              f"  {s['whole_cpu_per_10k_s'] if s['whole_cpu_per_10k_s'] is not None else '-':>25}")
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        summary(sys.argv[2])
    elif len(sys.argv) == 4:
        sys.exit(record(*sys.argv[1:]))
    else:
        sys.exit(__doc__)
