"""Short runs of the performance benchmarks (docs/performance.md has the full ones): each script
works end to end against the real broker, loses nothing, and its figures add up."""
import json
import os
import subprocess
import sys
import uuid

import pika

from conftest import AMQP_URL, ROOT, WORKER_BIN

API_BIN = os.environ.get("MAESTRO_API_BIN", str(ROOT / "target" / "debug" / "maestro-api"))
CEILING_BIN = str(ROOT / "target" / "debug" / "publish-ceiling")


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def test_scale_benchmark_short_run():
    """bench/scale.py: 1 and 2 workers on one queue, one worker on 10 queues."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--n", "2000", "--rounds", "1",
         "--workers", "1,2", "--queues", "10", "--worker", WORKER_BIN],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    summary = last_json(out.stdout)["summary"]
    assert set(summary) == {"w1", "w2", "q10"}
    assert summary["w2"]["workers"] == 2 and summary["q10"]["queues"] == 10
    for row in summary.values():
        assert row["steady"] > 0 and row["whole"] > 0
        assert row["worker_cpu_per_10k_s"] > 0


def test_api_ceiling_benchmark_short_run():
    """bench/api_ceiling.py with the broker's ceiling for the API's own messages beside the API
    (the peers' raw publisher is left out here): every 202 is on the queue, both queue types."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api_ceiling.py"), "--rounds", "1", "--duration", "2",
         "--raw-n", "2000", "--raw-bin", "none", "--api-bin", API_BIN, "--celery-bin", CEILING_BIN],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = last_json(out.stdout)
    for qtype in ("classic", "quorum"):
        s = result["summary"][qtype]
        assert s["celery_rate"] > 0 and s["api_rate"] > 0 and s["rate_ratio_vs_celery"] > 0
        (api,) = result["runs"][qtype]["api"]
        assert api["accepted"] > 0 and api["non2xx"] == 0
        assert api["on_queue"] >= api["accepted"]


def test_cputime_wrapper_records_a_contender():
    """bench/cputime.py, which the drain benchmark wraps every contender in: a worker draining a
    prefilled queue under it leaves a record with CPU time per 10,000 messages."""
    import tempfile
    import time
    import signal as sig
    sys.path.insert(0, str(ROOT / "bench"))
    from benchlib import delete_worker_topology, prefill

    queue, n = f"tcpu{uuid.uuid4().hex[:8]}", 3000
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    prefill(ch, queue, n, "cputime-test")
    out_dir = tempfile.mkdtemp()
    flags = (f"--enable-diagnostics true --delay-prefix {queue}_d --dead-letter-exchange {queue}.dead "
             f"--dead-letter-queue {queue}.dead --without-heartbeat --remote-control false")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "cputime.py"), out_dir, "w",
         f"exec {WORKER_BIN} -Q $QUEUE {flags}"],
        env={**os.environ, "QUEUE": queue, "N": str(n)}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while ch.queue_declare(queue, passive=True).method.message_count > 0:
            assert time.monotonic() < deadline, "not drained"
            time.sleep(0.1)
        time.sleep(1)
    finally:
        os.killpg(proc.pid, sig.SIGTERM)
        proc.wait(60)
        delete_worker_topology(ch, [queue], f"{queue}.dead", f"{queue}_d")
        conn.close()
    (record,) = [json.load(open(os.path.join(out_dir, f))) for f in os.listdir(out_dir)]
    assert record["contender"] == "w" and record["n"] == n
    assert record["whole_cpu_s"] > 0 and record["whole_cpu_per_10k_s"] > 0
    summary = subprocess.run([sys.executable, str(ROOT / "bench" / "cputime.py"), "--summary", out_dir],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(summary.strip().splitlines()[-1])["w"]["runs"] == 1


def test_report_benchmark_short_run():
    """bench/report_memory.py at 1,000 rows: the report finishes with every row stored, and
    the store's insert ceiling is measured beside it."""
    from conftest import MONGODB_URI
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report_memory.py"), "--n", "1000", "--qtd", "200",
         "--worker", WORKER_BIN],
        capture_output=True, text=True, timeout=600, env={**os.environ, "MONGODB_URI": MONGODB_URI})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    r = last_json(out.stdout)
    assert r["rows_stored_when_notified"] == 1000 and r["notification"]["type"] == "success"
    assert r["report_rows_per_s"] > 0 and r["ceiling_rows_per_s"] > 0 and r["peak_rss_vmhwm_mb"] > 0
    assert r["report_cpu_s"]["worker"] > 0 and 0 < r["report_cpu_s"]["machine_busy"] <= 1


def test_results_ceiling_benchmark_short_run():
    """bench/results_ceiling.py at 300 results, one round: every result is stored (the script
    checks the count), the ceiling writes with the worker's write concern, and the rates, the
    ratio and the store's operations are printed."""
    from conftest import MONGODB_URI
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "results_ceiling.py"), "--n", "300", "--rounds", "1",
         "--worker", WORKER_BIN],
        capture_output=True, text=True, timeout=600, env={**os.environ, "MONGODB_URI": MONGODB_URI})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("write concern of the worker and the ceiling:"), lines
    assert any("store operations: worker" in line and "'update'" in line for line in lines), lines
    median = lines[-1]
    assert median.startswith("median: worker") and "ratio" in median, median
    ratio = float(median.split("ratio ")[1].split("x")[0])
    assert ratio > 0, median


def test_instructions_benchmark_short_run():
    """bench/instructions.py with the worker alone at 100 and 300 messages under callgrind: it
    drains both queues and prints the instructions per message, with and without copies."""
    # $PREFIX is the script's own run name: it deletes what the worker declares under it.
    worker = (f"exec {WORKER_BIN} -Q $QUEUE --delay-prefix ${{PREFIX}}_delayed "
              "--dead-letter-exchange $PREFIX.dead --dead-letter-queue $PREFIX.dead")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "instructions.py"), "--small", "100", "--large", "300",
         "--contender", f"maestro-worker|{worker}"],
        capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    row = out.stdout.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "maestro-worker", row
    total, without = (int(cells[i].replace(",", "")) for i in (1, 3))
    assert 0 < without <= total, row


def test_analytics_map_benchmark_short_run():
    """bench/analytics_map.py at 60 applications, one round: the map task succeeds, the graph
    ends `finished`, the stand-in for analytics-front received the very SVG the task drew, every
    seeded application and dependency is on the map, and the worker's RSS was read."""
    from conftest import MONGODB_URI
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "analytics_map.py"), "--n", "60", "--rounds", "1",
         "--worker", WORKER_BIN],
        capture_output=True, text=True, timeout=600, env={**os.environ, "MONGODB_URI": MONGODB_URI})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    r = last_json(out.stdout)
    (run,) = r["runs"]
    assert run["state"] == "SUCCESS" and run["graph_status"] == "finished", run
    assert run["svg_bytes"] > 0 and run["front_payload_bytes"] == run["svg_bytes"]
    assert run["front_calls"] == 1 and run["front_jwt_ok"] and run["front_total"] == "60"
    assert run["apps"] == r["apps_expected"] == 60 and run["edges"] == r["edges_seeded"]
    assert run["worker_hwm_mib"] > 0 and r["worker_rss_before_mib"] > 0
    s = r["summary"]
    assert s["succeeded"] == 1 and s["median_task_s"] > 0 and s["max_worker_hwm_mib"] > 0
    assert s["median_store_reads_s"] > 0 and s["task_vs_store_reads"] > 0
