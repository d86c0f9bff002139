#!/usr/bin/env bash
# Runs the stack with a demo job on a fresh Debian machine, as a Maestro operator runs it:
# RabbitMQ (installed and started when absent), a MongoDB (SecantusDB unless MONGODB_URI names
# one), moto standing in for AWS, maestro-api, workers for the discovery, report, scheduler,
# notify and webhook queues, and two maestro-beats sharing one lease. Then it does what
# Maestro's server-app does when a user adds an AWS connection and asks for a report
# (scripts/demo_walk.py): the beats fire the connection's schedules, discovery fills the
# inventory, the report is built and read back as JSON, CSV and an Ansible inventory.
#
#   scripts/demo.sh          run the walk, then stop everything and delete what it made
#   scripts/demo.sh --keep   leave the stack running after the walk (Ctrl-C stops it)
#
# Every broker and database name it makes starts with `demo`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
keep=false
[ "${1:-}" = "--keep" ] && keep=true
state="${MAESTRO_TEST_HOME:-$HOME/.cache/maestro-tests}"
venv="$state/venv"
mkdir -p "$state"
logs="$(mktemp -d "${TMPDIR:-/tmp}/maestro-demo.XXXXXX")"
started_pids=()
own_mongo=false

cleanup() {
  for pid in "${started_pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -n "${venv_python:-}" ]; then
    "$venv_python" - "${MONGODB_URI:-}" "$own_mongo" <<'PY' || true
import sys, pika, pymongo
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = c.channel()
queues = [f"demo.{q}" for q in ("discovery", "report", "scheduler", "notify", "webhook",
                                "analytics", "celery", "dead")] + [f"demo_delayed_{i}" for i in range(28)]
for q in queues:
    ch.queue_delete(q)
for x in queues + ["demo_delayed_delivery"]:
    ch.exchange_delete(x)
c.close()
if sys.argv[1] and sys.argv[2] != "true":
    client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000)
    for name in ("demo-maestro-client", "demo-maestro-reports", "demo-celery"):
        client.drop_database(name)
PY
  fi
  [ -n "${mongo_dir:-}" ] && rm -rf "$mongo_dir"
  echo "demo: stopped; logs were in $logs"
}
trap cleanup EXIT

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
ensure_rabbitmq
ensure_venv
venv_python="$venv/bin/python"
[ -z "${MONGODB_URI:-}" ] && own_mongo=true
ensure_mongodb
# MAESTRO_BIN_DIR names a directory of already built binaries (as the tests' MAESTRO_*_BIN do).
bin="${MAESTRO_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}"
if [ -z "${MAESTRO_BIN_DIR:-}" ]; then
  log "building maestro-api, maestro-worker, maestro-beat (release)"
  cargo build --release -q -p maestro-api -p maestro-catalogue -p maestro-beat
fi

free_port() { "$venv_python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
api_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$logs/moto.log" 2>&1 &
started_pids+=("$!")

routes="maestro.discovery.scan=demo.discovery"
for t in general pivot upload finish; do routes+=",maestro.report.$t=demo.report"; done
routes+=",maestro.scheduler.run=demo.scheduler,maestro.notify=demo.notify"
routes+=",maestro.webhook=demo.webhook,maestro.aggregation=demo.analytics"
export CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"
export CELERY_RESULT_BACKEND="${MONGODB_URI%/}/demo-celery"
export MAESTRO_MONGO_URI="$MONGODB_URI"
export MAESTRO_MONGO_DATABASE="demo-maestro-client"
export MAESTRO_REPORTS_DATABASE="demo-maestro-reports"
export MAESTRO_ROUTES="$routes"
export MAESTRO_SECRETJWT_PRIVATE="demo-private-$RANDOM$RANDOM"
export MAESTRO_NOAUTH="demo-noauth-$RANDOM$RANDOM"
export MAESTRO_SECRETJWT="demo-connections-$RANDOM$RANDOM"
export MAESTRO_DISCOVERY_URI="http://127.0.0.1:$api_port"
export MAESTRO_REPORT_URI="http://127.0.0.1:$api_port"
export MAESTRO_AWS_ENDPOINT="http://127.0.0.1:$moto_port"
export MAESTRO_LOG_FORMAT=json

MAESTRO_HOST=127.0.0.1 MAESTRO_PORT="$api_port" "$bin"/maestro-api >"$logs/api.log" 2>&1 &
started_pids+=("$!")
for spec in discovery report scheduler,notify,webhook; do
  name="${spec%%,*}"
  queues=""
  IFS=, read -ra parts <<<"$spec"
  for q in "${parts[@]}"; do queues+="${queues:+,}demo.$q"; done
  "$bin"/maestro-worker -Q "$queues" \
    -n "demo-$name@%h" --delay-prefix demo_delayed \
    --dead-letter-exchange demo.dead --dead-letter-queue demo.dead \
    --metrics-addr 127.0.0.1:0 >"$logs/worker-$name.log" 2>&1 &
  started_pids+=("$!")
done
for i in 1 2; do
  "$bin"/maestro-beat --lease-name demo --default-queue demo.celery \
    -n "demo-beat$i" --metrics-addr off >"$logs/beat$i.log" 2>&1 &
  started_pids+=("$!")
done
for _ in $(seq 1 60); do
  port_open 127.0.0.1 "$api_port" && port_open 127.0.0.1 "$moto_port" && break
  sleep 0.5
done
log "stack up: maestro-api on http://127.0.0.1:$api_port, moto on :$moto_port, logs in $logs"

"$venv_python" scripts/demo_walk.py --api "http://127.0.0.1:$api_port" --mongo "$MONGODB_URI" \
  --client-db "$MAESTRO_MONGO_DATABASE" --reports-db "$MAESTRO_REPORTS_DATABASE" \
  --moto "http://127.0.0.1:$moto_port" --secret-private "$MAESTRO_SECRETJWT_PRIVATE" \
  --noauth "$MAESTRO_NOAUTH" --secretjwt "$MAESTRO_SECRETJWT"

if $keep; then
  log "the stack keeps running (Ctrl-C stops it): maestro-api http://127.0.0.1:$api_port,"
  log "MongoDB $MONGODB_URI (databases demo-*); the walk printed a private token for the API"
  wait
fi
echo "demo done"
