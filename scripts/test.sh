#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine.
#
#   scripts/test.sh                  everything (what .ci/run calls)
#   scripts/test.sh PYTEST_ARGS...   only the binaries' build and the given pytest selection,
#                                    e.g. scripts/test.sh tests/test_chaos.py -s
#
# Installs and starts what is absent: RabbitMQ (Debian's rabbitmq-server) on 127.0.0.1:5672,
# the MongoDB wire-protocol server SecantusDB 0.7.0b3 (unless MONGODB_URI points at a real
# MongoDB), Redis (Debian's redis-server, unless one answers on 127.0.0.1:6379 or REDIS_URL
# names one), wrk and OpenSSH's server (for the imports' tests, which run an sshd of their own;
# Debian's ssh service is not started). Makes a Python venv with Celery 5.7 for the interop tests. Then: format and
# lint checks, the Rust unit and integration tests, and the end-to-end Python suite in tests/.
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

# One build from a clean clone: incremental caches would only take disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

ensure_rabbitmq
ensure_venv
ensure_mongodb
ensure_redis
ensure_wrk
ensure_valgrind
ensure_sshd

if [ "$#" -eq 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets -q -- -D warnings
  cargo clippy -p maestro-worker --no-default-features -q -- -D warnings
  log "cargo package (the library crates could be published)"
  cargo package --no-verify --allow-dirty -q -p maestro-macros -p maestro-broker -p maestro-tasks \
    -p maestro-results -p maestro-telemetry -p maestro-worker
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
