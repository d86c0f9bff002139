#!/usr/bin/env bash
# The fault suite on its own (tests/test_chaos.py), then its figures as a table.
#
#   scripts/chaos.sh                       20,000 tasks in the SIGKILL run
#   MAESTRO_CHAOS_TASKS=5000 scripts/chaos.sh
#   MAESTRO_CHAOS_CANVAS=300 scripts/chaos.sh   chains and chords in the canvas run (60 by default)
#
# Loopback only; it starts (and stops) RabbitMQ nodes and a SecantusDB server of its own, and
# uses the machine's RabbitMQ on 127.0.0.1:5672 and MONGODB_URI (or a SecantusDB it starts)
# as scripts/test.sh does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
figures="$(mktemp "${TMPDIR:-/tmp}/maestro-chaos-figures.XXXXXX")"
trap 'rm -f "$figures"' EXIT
MAESTRO_CHAOS_FIGURES="$figures" "$root/scripts/test.sh" tests/test_chaos.py -s -v "$@"
python3 - "$figures" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = ["test", "chains", "chords", "tasks", "lost", "failed", "ran_after_success", "ran_again_write_in_flight",
        "ran_twice_or_more",
        "max_runs", "kills", "accepted_202", "refused_503", "seconds_down", "seconds"]
print("| " + " | ".join(keys) + " |")
print("|" + "---|" * len(keys))
for r in rows:
    print("| " + " | ".join(str(r.get(k, "-")) for k in keys) + " |")
PY
