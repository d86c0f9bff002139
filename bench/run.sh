#!/usr/bin/env bash
# The worker benchmarks, side by side in one run (see docs/performance.md):
#  1. drain: 20,000 no-op Celery messages drained by maestro-worker, Python Celery 5.7,
#     rusty-celery 0.5.5 and the raw lapin ceilings (acknowledging, and no-ack: the broker's own
#     delivery ceiling), 3 rounds, medians (../shared/peers); each contender's CPU time per
#     10,000 messages from /proc (bench/cputime.py).
#  2. memory: idle RSS, and RSS with 100,000 countdown tasks pending.
# Needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl (scripts/test.sh installs both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The benchmark task is the diagnostic maestro.noop, which deployments leave off.
export MAESTRO_ENABLE_DIAGNOSTICS=true
cd "$root"
peers="${PEERS_DIR:-$root/../shared/peers}"
n="${N:-20000}"
rounds="${ROUNDS:-3}"
cargo build --release -q -p maestro-catalogue --bin maestro-worker
specs=$("$peers/setup.sh")
py="${PEERS_HOME:-$HOME/.cache/maestro-peers}/venv/bin/python"
cpu_dir="$(mktemp -d)"
# Every contender runs under bench/cputime.py, which records its CPU time from /proc.
cpu() { echo "exec $py $root/bench/cputime.py $cpu_dir $1 '$2'"; }
maestro="exec $root/target/release/maestro-worker -Q \$QUEUE --delay-prefix maestro_bench_delayed --dead-letter-exchange maestro_bench.dead --dead-letter-queue maestro_bench.dead"
args=(--contender "maestro|maestro_bench|maestro.noop|$(cpu maestro "$maestro")")
while IFS='|' read -r name queue task command; do
  args+=(--contender "$name|$queue|$task|$(cpu "$name" "$command")")
done <<<"$specs"
echo "== drain: $n messages, $rounds rounds"
"$py" "$peers/drain_bench.py" --n "$n" --rounds "$rounds" "${args[@]}" | tee bench/last-drain.txt
echo "== CPU time per 10,000 messages (utime+stime of the contender's process)"
"$py" bench/cputime.py --summary "$cpu_dir" | tee bench/last-cpu.txt
rm -rf "$cpu_dir"
echo "== memory"
"$py" bench/memory.py --n "${MEM_N:-100000}" | tee bench/last-memory.txt
# Results on vs off, same run, messages that ask for a result (MONGODB_URI, else a SecantusDB
# started by scripts/test.sh is not available here: set MONGODB_URI).
if [ -n "${MONGODB_URI:-}" ]; then
  echo "== results: off vs MongoDB at MONGODB_URI"
  "$py" -m pip install -q 'pymongo==4.15.3'

  db="${MONGODB_URI%/}/maestro_bench_results"
  "$py" bench/drain_with_results.py --n "${RESULTS_N:-20000}" --rounds "$rounds" \
    --contender "results-off|maestro_bench|maestro.noop|exec $root/target/release/maestro-worker -Q \$QUEUE --delay-prefix maestro_bench_delayed --dead-letter-exchange maestro_bench.dead --dead-letter-queue maestro_bench.dead" \
    --contender "results-mongodb|maestro_bench|maestro.noop|exec $root/target/release/maestro-worker -Q \$QUEUE --result-backend $db --delay-prefix maestro_bench_delayed --dead-letter-exchange maestro_bench.dead --dead-letter-queue maestro_bench.dead" \
    | tee bench/last-results.txt
  "$py" -c "import pymongo,sys; pymongo.MongoClient(sys.argv[1]).drop_database('maestro_bench_results')" "$MONGODB_URI"
fi
# Remove what the maestro contender declared (the peers' queues are drain_bench.py's own).
"$py" - <<'PY'
import pika
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = c.channel()
p = "maestro_bench_delayed"
for q in ["maestro_bench", "maestro_bench.dead"] + [f"{p}_{i}" for i in range(28)]:
    ch.queue_delete(q)
for x in ["maestro_bench", "maestro_bench.dead", f"{p}_delivery"] + [f"{p}_{i}" for i in range(28)]:
    ch.exchange_delete(x)
c.close()
PY
