#!/usr/bin/env python3
"""Instructions per message of drain contenders, counted by valgrind's callgrind.

CPU seconds on this 2-core machine move by a fifth from run to run; instruction counts do not
(callgrind counts the instructions a process executes, whatever else the machine is doing).
They are user-space instructions only (no kernel time), and libc's large copies are counted per
byte (`rep movsb`), so the figure without memcpy/memmove is shown beside the total.
Each contender drains a small and a large queue of persistent `maestro.noop` messages under
`valgrind --tool=callgrind`; the difference of the two totals divided by the difference of the
two sizes is what one more message costs, without start-up and shutdown.

    instructions.py [--small 2000] [--large 10000] [--contender 'NAME|COMMAND' ...]
                    [--annotate NAME] [--keep DIR]

COMMAND runs under `sh -c` with `QUEUE`, `N` and `PREFIX` set, and `$QUEUE`/`$N`/`$PREFIX` in
it are expanded by the shell. A maestro-worker contender names its delay levels and dead letters
after `$PREFIX` (`--delay-prefix ${PREFIX}_delayed --dead-letter-exchange $PREFIX.dead
--dead-letter-queue $PREFIX.dead`), so that they are deleted after each run. It is stopped (SIGTERM to its process group) once the queue is empty and nothing is
left unacknowledged, unless it exits by itself first. Without --contender: the release
maestro-worker (its defaults) and the peers' raw lapin consumer (`$PEERS_HOME`, built by the
peers' setup.sh), acknowledging in batches as in the drain benchmark. `--annotate NAME` prints
the functions that cost that contender most in the large run (inclusive, from
callgrind_annotate). Every queue, exchange and delay level a run declares is deleted after it.
"""
import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import delete_worker_topology, prefill  # noqa: E402 (beside this script)

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS_HOME = pathlib.Path(os.environ.get("PEERS_HOME", pathlib.Path.home() / ".cache/maestro-peers"))


def default_contenders(run):
    worker = ROOT / "target" / "release" / "maestro-worker"
    lapin = PEERS_HOME / "target-raw-lapin" / "release" / "raw-lapin-ceiling"
    return [
        ("maestro-worker",
         f"exec {worker} -Q $QUEUE --delay-prefix ${{PREFIX}}_delayed "
         "--dead-letter-exchange $PREFIX.dead --dead-letter-queue $PREFIX.dead"),
        ("raw-lapin", f"exec {lapin} 1000 batch"),
    ]


def drained(queue):
    """Ready + unacknowledged messages of `queue`, from rabbitmqctl (0 once all are acked)."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1]) == 0
    return False


def total_instructions(path):
    for line in pathlib.Path(path).read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def copy_instructions(path):
    """Instructions counted in libc's memcpy/memmove. glibc copies large blocks with `rep
    movsb`, which callgrind counts once per byte, so these are shown apart: on the hardware a
    9 KB copy is a few hundred cycles, not the 9,000 instructions counted."""
    out = subprocess.run(["callgrind_annotate", path], capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        if re.search(r"__mem(cpy|move)_", line):
            total += int(line.split()[0].replace(",", ""))
    return total


def run_one(ch, run, name, command, n, out_dir, timeout):
    queue = f"ins{run}.{re.sub(r'[^a-z0-9]', '', name.lower())}.{n}"
    prefill(ch, queue, n, "instructions-bench")
    out = os.path.join(out_dir, f"{name}.{n}.callgrind")
    # `sh -c 'exec ...'` keeps one pid, so the program's counts land in `out` (children the
    # program starts, if any, would get files of their own: `out.PID`).
    env = {**os.environ, "QUEUE": queue, "N": str(n), "PREFIX": f"ins{run}",
           "MAESTRO_ENABLE_DIAGNOSTICS": "true"}
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}",
         "sh", "-c", command],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        stopped = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not drain {n} messages in {timeout} s")
            if drained(queue):
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(120)
                stopped = True
                break
            time.sleep(1)
        # Counts are used only from a contender that drained the queue and, when it stopped
        # by itself, stopped cleanly: a crash's counts would say nothing.
        if not stopped and proc.returncode != 0:
            raise SystemExit(f"{name} exited with {proc.returncode} before draining {n} messages")
        if not drained(queue):
            raise SystemExit(f"{name} left messages of {queue} undrained")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        delete_worker_topology(ch, [queue], f"ins{run}.dead", f"ins{run}_delayed")
    return total_instructions(out), copy_instructions(out), out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--large", type=int, default=10000)
    p.add_argument("--contender", action="append", default=[], help="NAME|COMMAND")
    p.add_argument("--annotate", action="append", default=[], help="NAME")
    p.add_argument("--keep", help="keep the callgrind files in this directory")
    p.add_argument("--timeout", type=float, default=900)
    args = p.parse_args()
    if not 0 < args.small < args.large:
        p.error("--small and --large: need 0 < small < large (the per-message figure is the "
                "difference of the two runs over the difference of their sizes)")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian package valgrind)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:8]
    contenders = [tuple(c.split("|", 1)) for c in args.contender] or default_contenders(run)
    out_dir = args.keep or tempfile.mkdtemp(prefix="instructions-")
    os.makedirs(out_dir, exist_ok=True)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    ch.confirm_delivery()
    rows = []
    try:
        for name, command in contenders:
            small, small_copy, _ = run_one(ch, run, name, command, args.small, out_dir,
                                           args.timeout)
            large, large_copy, large_file = run_one(ch, run, name, command, args.large, out_dir,
                                                    args.timeout)
            per = (large - small) / (args.large - args.small)
            per_copy = (large_copy - small_copy) / (args.large - args.small)
            rows.append((name, per, per - per_copy))
            print(f"{name}: {per:,.0f} instructions per message, {per - per_copy:,.0f} without "
                  f"memcpy/memmove ({small:,} for {args.small}, {large:,} for {args.large})",
                  flush=True)
            if name in args.annotate:
                report = subprocess.run(
                    ["callgrind_annotate", "--inclusive=yes", large_file],
                    capture_output=True, text=True).stdout
                print("\n".join(report.splitlines()[:70]))
        base, base_rest = rows[-1][1], rows[-1][2]
        print("| contender | instructions per message | ratio | without memcpy/memmove | ratio |")
        for name, per, rest in rows:
            print(f"| {name} | {per:,.0f} | {per / base:.2f}x | {rest:,.0f} | "
                  f"{rest / base_rest:.2f}x |")
    finally:
        conn.close()
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
