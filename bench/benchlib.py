"""What the benchmark scripts share: a free port, a Celery protocol-v2 `maestro.noop` message,
a worker's acknowledgement count from its metrics, CPU time from /proc, RabbitMQ's process,
and the removal of what a worker declared for a run (its queues, dead letters, delay levels)."""
import json
import os
import pathlib
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


def broker_pid():
    """RabbitMQ's Erlang VM on this machine (beam.smp), to read the broker's CPU time."""
    out = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def delete_worker_topology(ch, queues, dead, delay_prefix):
    """Deletes `queues` (and their exchanges), the dead-letter queue and exchange `dead`, and the
    delay levels and delivery exchange of `delay_prefix`."""
    levels = [f"{delay_prefix}_{i}" for i in range(DELAY_LEVELS)]
    for q in (*queues, dead, *levels):
        ch.queue_delete(q)
    for x in (*queues, dead, *levels, f"{delay_prefix}_delivery"):
        ch.exchange_delete(x)
