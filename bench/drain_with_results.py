#!/usr/bin/env python3
"""The shared drain benchmark (../shared/peers/drain_bench.py), with messages that ask for a
result (`ignore_result: False`), so a worker with a result backend stores one per task.
Same arguments as drain_bench.py; PEERS_DIR names its folder."""
import importlib.util
import os
import pathlib
import sys

peers = pathlib.Path(os.environ.get("PEERS_DIR", pathlib.Path(__file__).resolve().parents[2] / "shared" / "peers"))
spec = importlib.util.spec_from_file_location("drain_bench", peers / "drain_bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
plain = bench.celery_v2


def with_result(task, queue):
    props, body = plain(task, queue)
    props.headers["ignore_result"] = False
    return props, body


bench.celery_v2 = with_result
sys.exit(bench.main())
