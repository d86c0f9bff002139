"""What the benchmark scripts share: a free port, a Celery protocol-v2 `maestro.noop` message, a
task queue declared and prefilled as a worker expects it, a worker's acknowledgement count from
its metrics, CPU time from /proc, RabbitMQ's process, a local store's process, how busy the
machine's cores were, and the removal of what a worker declared for a run (its queues, dead
letters, delay levels)."""
import json
import os
import pathlib
import re
import socket
import subprocess
import urllib.request
import uuid

import pika

TICK = os.sysconf("SC_CLK_TCK")
# kombu's delay levels: a worker with `--delay-prefix P` declares queues and exchanges P_0..P_27.
DELAY_LEVELS = 28


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def noop_message(origin, ignore_result=True):
    """One persistent `maestro.noop` message as Celery 5.7 sends it: (task id, properties, body)."""
    tid = str(uuid.uuid4())
    headers = {
        "lang": "py", "task": "maestro.noop", "id": tid, "shadow": None, "eta": None,
        "expires": None, "group": None, "group_index": None, "retries": 0,
        "timelimit": [None, None], "root_id": tid, "parent_id": None, "argsrepr": "()",
        "kwargsrepr": "{}", "origin": origin, "ignore_result": ignore_result,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8",
                                 delivery_mode=2, priority=0, correlation_id=tid, headers=headers)
    body = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return tid, props, body.encode()


def declare_task_queue(ch, queue):
    """`queue` as a worker's Celery topology has it: durable, bound by its own name to a direct
    exchange of the same name."""
    ch.exchange_declare(queue, "direct", durable=True)
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, queue, queue)


def prefill(ch, queue, n, origin, ignore_result=True):
    """Declares `queue` (`declare_task_queue`) and publishes `n` `maestro.noop` messages to it
    (confirmed when `ch` has confirms on)."""
    declare_task_queue(ch, queue)
    for _ in range(n):
        _, props, body = noop_message(origin, ignore_result=ignore_result)
        ch.basic_publish(queue, queue, body, props)


def worker_acks(port):
    """The worker's `maestro_worker_acks_total` (all queues), or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(float(l.split()[-1]) for l in text.splitlines()
               if l.startswith("maestro_worker_acks_total"))


def cpu_seconds(pid):
    """utime + stime of a process and all its threads, from /proc/PID/stat."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_meter(pid):
    """A function that gives the CPU seconds process `pid` spent since this call; it gives None
    when `pid` is None (a process not on this machine)."""
    if pid is None:
        return lambda: None
    start = cpu_seconds(pid)
    return lambda: cpu_seconds(pid) - start


def broker_pid():
    """RabbitMQ's Erlang VM on this machine (beam.smp), to read the broker's CPU time."""
    out = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def listener_pid(url):
    """The process listening on the port of `url` (`mongodb://host:port/...`) when the host is
    this machine (127.0.0.1 or localhost), from `ss`, to read a local store's CPU time; None
    when it is not local, `ss` is missing, or nothing listens."""
    m = re.match(r"^[a-z+]+://(?:[^@/]*@)?(?:127\.0\.0\.1|localhost)(?::(\d+))?(?:[/?,]|$)", url)
    if not m:
        return None
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{m.group(1) or 27017}"],
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        return None
    found = re.search(r"pid=(\d+)", out)
    return int(found.group(1)) if found else None


def machine_busy(since=None):
    """(busy, total) jiffies of all cores from /proc/stat; with `since`, the busy fraction of
    the machine's cores since then."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    now = (sum(fields) - idle, sum(fields))
    if since is None:
        return now
    return (now[0] - since[0]) / max(1, now[1] - since[1])


def delete_worker_topology(ch, queues, dead, delay_prefix):
    """Deletes `queues` (and their exchanges), the dead-letter queue and exchange `dead`, and the
    delay levels and delivery exchange of `delay_prefix`."""
    levels = [f"{delay_prefix}_{i}" for i in range(DELAY_LEVELS)]
    for q in (*queues, dead, *levels):
        ch.queue_delete(q)
    for x in (*queues, dead, *levels, f"{delay_prefix}_delivery"):
        ch.exchange_delete(x)
