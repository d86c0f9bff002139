# Shared by scripts/test.sh and scripts/demo.sh: install and start RabbitMQ when absent, make
# the Python venv (Celery, pika, pymongo, SecantusDB, moto), start SecantusDB unless
# MONGODB_URI names a MongoDB. The caller sets $venv and keeps $started_pids and $mongo_dir
# for its cleanup.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_rabbitmq() {
  if port_open 127.0.0.1 5672; then
    log "RabbitMQ is running on 127.0.0.1:5672"
    return
  fi
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server
  fi
  if ! port_open 127.0.0.1 5672; then
    log "starting RabbitMQ"
    as_root rabbitmq-server -detached || true
  fi
  for _ in $(seq 1 120); do
    port_open 127.0.0.1 5672 && break
    sleep 1
  done
  port_open 127.0.0.1 5672 || { echo "RabbitMQ did not start on 127.0.0.1:5672" >&2; exit 1; }
  as_root rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  log "RabbitMQ is up"
}

ensure_venv() {
  local want="celery==5.7.0 kombu==5.7.0 pika==1.4.4 pytest==8.4.2 pymongo==4.15.3 SecantusDB==0.7.0b3 schemathesis==4.32.5 moto[server]==5.2.5 redis==6.4.0 flower==2.0.1 msgpack==1.2.4 PyYAML==6.0.4 brotli==1.2.1 backports.zstd==1.8.1 resvg-py==0.5.0"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    log "making the Python test venv in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $want
    echo "$want" > "$venv/.requirements"
  fi
}

# Redis for the Redis result backend's tests: the one on 127.0.0.1:6379 when it runs (tests use
# only keys of their own), else Debian's redis-server on a free port, in memory, stopped on exit.
# Exports REDIS_URL.
ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then
    log "using Redis at REDIS_URL"
    return
  fi
  if port_open 127.0.0.1 6379; then
    export REDIS_URL="redis://127.0.0.1:6379/0"
    log "Redis is running on 127.0.0.1:6379"
    return
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  fi
  local port
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log "starting Redis on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no >/dev/null 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 1 30); do
    port_open 127.0.0.1 "$port" && break
    sleep 0.5
  done
  port_open 127.0.0.1 "$port" || { echo "Redis did not start on 127.0.0.1:$port" >&2; exit 1; }
  export REDIS_URL="redis://127.0.0.1:$port/0"
}

ensure_mongodb() {
  if [ -n "${MONGODB_URI:-}" ]; then
    log "using MongoDB at MONGODB_URI"
    return
  fi
  local port
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mongo_dir="$(mktemp -d "${TMPDIR:-/tmp}/maestro-mongo.XXXXXX")"
  log "starting SecantusDB on 127.0.0.1:$port"
  "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$mongo_dir/data" \
    >"$mongo_dir/server.log" 2>&1 &
  started_pids+=("$!")
  for _ in $(seq 1 60); do
    if "$venv/bin/python" - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, pymongo
pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}", serverSelectionTimeoutMS=500).admin.command("ping")
PY
    sleep 1
  done
  export MONGODB_URI="mongodb://127.0.0.1:$port"
  "$venv/bin/python" -c "import pymongo; pymongo.MongoClient('$MONGODB_URI', serverSelectionTimeoutMS=2000).admin.command('ping')" \
    || { echo "SecantusDB did not answer on $MONGODB_URI; see $mongo_dir/server.log" >&2; cat "$mongo_dir/server.log" >&2; exit 1; }
}

# wrk, the HTTP load generator of the API benchmark (bench/api_ceiling.py, and its short run in
# the suite), from Debian's package.
# OpenSSH's server for the imports' SSH tests, which start an sshd of their own on a free
# loopback port. Installed without starting Debian's own sshd service (policy-rc.d says no).
ensure_sshd() {
  if [ ! -x /usr/sbin/sshd ]; then
    log "installing openssh-server (its service is not started)"
    as_root apt-get update -q
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod +x "$policy"
      placed=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server
    if [ -n "$placed" ]; then as_root rm -f "$policy"; fi
  fi
}

ensure_wrk() {
  if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk
  fi
}

# valgrind: bench/instructions.py counts instructions per message under callgrind.
ensure_valgrind() {
  if ! command -v valgrind >/dev/null 2>&1; then
    log "installing valgrind"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind
  fi
}
