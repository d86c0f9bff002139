#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine.
#
#   scripts/test.sh                  everything (what .ci/run calls)
#   scripts/test.sh PYTEST_ARGS...   only the binaries' build and the given pytest selection,
#                                    e.g. scripts/test.sh tests/test_chaos.py -s
#
# Installs and starts what is absent: RabbitMQ (Debian's rabbitmq-server) on 127.0.0.1:5672,
# and the MongoDB wire-protocol server SecantusDB 0.7.0b3 (unless MONGODB_URI points at a real
# MongoDB). Makes a Python venv with Celery 5.7 for the interop tests. Then: format and lint
# checks, the Rust unit and integration tests, and the end-to-end Python suite in tests/.
# Everything this script starts, it stops on exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
state="${MAESTRO_TEST_HOME:-$HOME/.cache/maestro-tests}"
venv="$state/venv"
mkdir -p "$state"
started_pids=()
cleanup() {
  for pid in "${started_pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  [ -n "${mongo_dir:-}" ] && rm -rf "$mongo_dir"
}
trap cleanup EXIT

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

ensure_venv() {
  local want="celery==5.7.0 kombu==5.7.0 pika==1.4.4 pytest==8.4.2 pymongo==4.15.3 SecantusDB==0.7.0b3 schemathesis==4.32.5 moto[server]==5.2.5"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$want" ]; then
    log "making the Python test venv in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q $want
    echo "$want" > "$venv/.requirements"
  fi
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

ensure_rabbitmq
ensure_venv
ensure_mongodb

if [ "$#" -eq 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -q -- -D warnings
fi
log "cargo build"
cargo build --workspace --bins -q
if [ "$#" -eq 0 ]; then
  log "cargo test (unit and integration, against RabbitMQ)"
  MAESTRO_TEST_PYTHON="$venv/bin/python" cargo test --workspace -q
  set -- tests/
  log "end-to-end, Python Celery interop and the fault suite (pytest)"
else
  log "pytest $*"
fi
export MAESTRO_TEST_PYTHON="$venv/bin/python"
export MAESTRO_WORKER_BIN="$root/target/debug/maestro-worker"
export MAESTRO_API_BIN="$root/target/debug/maestro-api"
export MAESTRO_BEAT_BIN="$root/target/debug/maestro-beat"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
