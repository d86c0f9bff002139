#!/usr/bin/env bash
# Runs the stack with a demo job on a fresh Debian machine: installs and starts RabbitMQ when
# absent, builds maestro-worker, starts two workers on the `report` queue, and has Python
# Celery 5.7 (in a venv this script makes) send them jobs and read the results over rpc://:
# an echo, a batch of 200, a countdown, a failure with its traceback, a time limit.
# Stops the workers and deletes the demo's queues when done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
state="${MAESTRO_TEST_HOME:-$HOME/.cache/maestro-tests}"
venv="$state/demo-venv"
mkdir -p "$state"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
ensure_rabbitmq
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'celery==5.7.0' 'kombu==5.7.0' 'pika==1.4.4'
fi
cargo build --release -q -p maestro-catalogue --bin maestro-worker

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2; do
  target/release/maestro-worker -Q report -n "demo$i@%h" --result-backend rpc:// \
    --delay-prefix demo_delayed --dead-letter-exchange demo.dead --dead-letter-queue demo.dead \
    --metrics-addr "127.0.0.1:981$i" \
    2> >(sed "s/^/[worker $i] /" >&2) &
  pids+=("$!")
done
sleep 2
"$venv/bin/python" - <<'PY'
import time
from celery import Celery
app = Celery("demo", broker="amqp://guest:guest@127.0.0.1:5672//", backend="rpc://")
send = lambda name, *a, **o: app.send_task(name, args=list(a), queue="report", **o)
print("echo      ->", send("maestro.echo", "ünïcødé", 2**70, {"nested": [1.5, None]}).get(timeout=30))
t = time.time()
batch = [send("maestro.echo", i) for i in range(200)]
assert [r.get(timeout=60)[0][0] for r in batch] == list(range(200))
print(f"batch     -> 200 results in {time.time() - t:.2f}s")
t = time.time()
print("countdown ->", send("maestro.sleep", 0.1, countdown=3).get(timeout=30), f"after {time.time() - t:.1f}s")
r = send("maestro.fail", "demo failure")
try:
    r.get(timeout=30)
except Exception as e:
    print("fail      ->", r.state, repr(e))
r = send("maestro.sleep", 10, time_limit=1)
try:
    r.get(timeout=30)
except Exception as e:
    print("timelimit ->", r.state, repr(e))
app.close()
PY
cleanup
pids=()
"$venv/bin/python" - <<'PY'
import pika
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = c.channel()
for q in ["report", "demo.dead"] + [f"demo_delayed_{i}" for i in range(28)]:
    ch.queue_delete(q)
for x in ["report", "demo.dead", "demo_delayed_delivery"] + [f"demo_delayed_{i}" for i in range(28)]:
    ch.exchange_delete(x)
c.close()
PY
echo "demo done"
