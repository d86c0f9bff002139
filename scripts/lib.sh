# Shared by scripts/test.sh and scripts/demo.sh: install and start RabbitMQ when absent.
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
