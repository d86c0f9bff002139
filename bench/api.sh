#!/usr/bin/env bash
# maestro-api enqueue benchmark (docs/api.md, "Benchmark"): wrk POSTs
# /tasks/maestro.noop with a valid JWT through the release maestro-api to the local RabbitMQ,
# 64 connections, 2 threads, 20 s, and prints requests/s and the latency distribution (p99).
# Each 202 is a message the broker confirmed; afterwards the queue depth is compared with the
# number of 202s. No worker runs: the per-run queue just fills and is deleted at the end.
# Needs RabbitMQ on 127.0.0.1:5672 and the test venv (pika) that scripts/test.sh makes.
# Knobs: DURATION (20s), CONNECTIONS (64), THREADS (2), AMQP_CONNECTIONS (2), QUEUE_TYPE (classic).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The benchmark task is the diagnostic maestro.noop, which deployments leave off.
export MAESTRO_ENABLE_DIAGNOSTICS=true
cd "$root"
py="${MAESTRO_TEST_PYTHON:-$HOME/.cache/maestro-tests/venv/bin/python}"
duration="${DURATION:-20s}"
connections="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
cargo build --release -q -p maestro-api

run="$(head -c 5 /dev/urandom | od -An -tx1 | tr -d ' \n')"
queue="tbench${run}.noop"
port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
secret="bench-secret-$run"
noauth="bench-noauth"
token="$("$py" - "$secret" "$noauth" <<'PY'
import base64, hashlib, hmac, json, sys
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = b(json.dumps({"noauth": sys.argv[2]}).encode())
s = b(hmac.new(sys.argv[1].encode(), f"{h}.{c}".encode(), hashlib.sha256).digest())
print(f"{h}.{c}.{s}")
PY
)"
lua="$(mktemp --suffix=.lua)"
log="$(mktemp --suffix=.log)"
cat >"$lua" <<EOF
wrk.method = "POST"
wrk.body = '{"args":[],"kwargs":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "JWT $token"
EOF

MAESTRO_SECRETJWT_PRIVATE="$secret" MAESTRO_NOAUTH="$noauth" MAESTRO_HOST=127.0.0.1 \
  MAESTRO_PORT="$port" MAESTRO_ROUTES="maestro.noop=$queue" MAESTRO_LOG_LEVEL=warn \
  MAESTRO_AMQP_CONNECTIONS="${AMQP_CONNECTIONS:-2}" MAESTRO_QUEUE_TYPE="${QUEUE_TYPE:-classic}" \
  "$root/target/release/maestro-api" >"$log" 2>&1 &
api_pid=$!
cleanup() {
  kill "$api_pid" 2>/dev/null || true
  wait "$api_pid" 2>/dev/null || true
  "$py" - "$queue" <<'PY' || true
import pika, sys
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = c.channel()
ch.queue_delete(sys.argv[1])
ch.exchange_delete(sys.argv[1])
c.close()
PY
  rm -f "$lua" "$log"
}
trap cleanup EXIT

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
# Warm up: connect to the broker and declare the queue before measuring.
curl -fsS -X POST -H "Content-Type: application/json" -H "Authorization: JWT $token" \
  -d '{"args":[],"kwargs":{}}' "http://127.0.0.1:$port/tasks/maestro.noop" >/dev/null

echo "== wrk -t$threads -c$connections -d$duration --latency POST /tasks/maestro.noop ($(nproc) cores)"
out="$(wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$lua" \
  "http://127.0.0.1:$port/tasks/maestro.noop")"
echo "$out"
sleep 1
depth="$("$py" - "$queue" <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
print(c.channel().queue_declare(sys.argv[1], passive=True).method.message_count)
c.close()
PY
)"
total="$(echo "$out" | awk '/requests in/ {print $1}')"
non2xx="$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
echo "== requests: $total, non-2xx: ${non2xx:-0}, messages on the queue: $depth (1 from the warm-up)"
