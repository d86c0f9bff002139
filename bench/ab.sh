#!/usr/bin/env bash
# A/B of maestro-worker builds: each binary and the peers' raw lapin consumer drain the same
# number of no-op messages in interleaved rounds (the peers' drain_bench.py), each under
# bench/cputime.py for its CPU time per 10,000 messages. For a change whose effect is smaller
# than the run-to-run noise of this machine: both builds are measured side by side, in one run.
#
#   bench/ab.sh NAME=BINARY [NAME=BINARY ...]        N=40000 ROUNDS=5 by default
#
# e.g. cp target/release/maestro-worker /tmp/before; (change, build);
#      bench/ab.sh before=/tmp/before after=target/release/maestro-worker
# Needs RabbitMQ on 127.0.0.1:5672 and the peers (PEERS_DIR, built by its setup.sh). Every
# queue, exchange and delay level the runs declare is deleted afterwards.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS_DIR:-$root/../shared/peers}"
home="${PEERS_HOME:-$HOME/.cache/maestro-peers}"
py="$home/venv/bin/python"
lapin="$home/target-raw-lapin/release/raw-lapin-ceiling"
[ "$#" -gt 0 ] || { echo "usage: bench/ab.sh NAME=BINARY [NAME=BINARY ...]" >&2; exit 2; }
[ -x "$lapin" ] || { echo "no raw lapin consumer at $lapin: run $peers/setup.sh" >&2; exit 2; }
export MAESTRO_ENABLE_DIAGNOSTICS=true
run="ab$$"
cpu_dir="$(mktemp -d)"
names=()
cleanup() {
  rm -rf "$cpu_dir"
  "$py" - "$run" "${names[@]}" <<'PY'
import sys
import pika
run, names = sys.argv[1], sys.argv[2:]
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = c.channel()
levels = [f"{run}_delayed_{i}" for i in range(28)]
for q in [f"{run}_{n}" for n in names] + [f"{run}_raw_lapin", f"{run}.dead"] + levels:
    ch.queue_delete(q)
for x in [f"{run}_{n}" for n in names] + [f"{run}.dead", f"{run}_delayed_delivery"] + levels:
    ch.exchange_delete(x)
c.close()
PY
}
trap cleanup EXIT
cpu() { echo "exec $py $root/bench/cputime.py $cpu_dir $1 '$2'"; }
args=()
for spec in "$@"; do
  name="${spec%%=*}" binary="${spec#*=}"
  [ -x "$binary" ] || { echo "$name: $binary is not an executable" >&2; exit 2; }
  names+=("$name")
  worker="exec $binary -Q \$QUEUE --delay-prefix ${run}_delayed --dead-letter-exchange $run.dead --dead-letter-queue $run.dead"
  args+=(--contender "$name|${run}_$name|maestro.noop|$(cpu "$name" "$worker")")
done
args+=(--contender "raw-lapin|${run}_raw_lapin|none|$(cpu raw-lapin "exec $lapin 1000 batch")")
"$py" "$peers/drain_bench.py" --n "${N:-40000}" --rounds "${ROUNDS:-5}" "${args[@]}" | grep -v '^{'
echo "== CPU time per 10,000 messages"
"$py" "$root/bench/cputime.py" --summary "$cpu_dir" | grep -v '^{'
