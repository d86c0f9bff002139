"""The short run of bench/discovery_scale.py (the 10,000-instance benchmark at 200): the
script works end to end, and its figures add up (every instance seen and written once, one
AWS call per page, nothing written by the unchanged second scan)."""
import json
import os
import subprocess
import sys

from conftest import MONGODB_URI, ROOT, WORKER_BIN


def test_discovery_benchmark_short_run():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "discovery_scale.py"), "--n", "200",
         "--page", "5", "--worker", WORKER_BIN],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "MONGODB_URI": MONGODB_URI})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    r = json.loads(out.stdout[out.stdout.index("{"):])
    first, again = r["first"], r["unchanged"]
    assert first["seen"] == again["seen"] == 200
    assert first["mongo_upserts"] == 200 and again["mongo_upserts"] == 0
    # Reservations of 20 in pages of 5 reservations: two pages, one AWS call each.
    assert first["pages"] == first["aws_calls"] == 2
    assert first["worker_peak_rss_mib"] > 0
    for ceiling in ("mongo_insert_ceiling", "mongo_upsert_ceiling", "aws_ceiling"):
        assert r[ceiling]["items_per_s"] > 0, ceiling
    assert r["first_vs_slower_ceiling"] > 0
