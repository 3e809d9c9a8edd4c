#!/usr/bin/env bash
# Make sure the test Redis answers on 127.0.0.1:6379, for the `kombu+redis://` runs of
# the behaviour suites. Installs Debian's redis-server when missing and starts it
# detached (no service manager runs here): bound to loopback, protected mode on, no
# snapshots and no append-only file (test data need not outlive the server). Safe to
# run again: it does nothing when Redis already answers PONG.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${DOVECOTE_TEST_REDIS_PORT:-6379}

pong() {
  [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = "PONG" ]
}

if command -v redis-cli >/dev/null 2>&1 && pong; then
  echo "ensure-redis: Redis already answers on 127.0.0.1:$PORT"
  exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "ensure-redis: installing redis-server"
  bash scripts/apt-install.sh redis-server
fi

# Debian's package may start one through its init script where a service manager
# runs; here none does, so this is usually the only start.
if ! pong; then
  echo "ensure-redis: starting redis-server"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --save '' --appendonly no \
    --protected-mode yes --dir /tmp --logfile /tmp/dovecote-redis.log \
    --pidfile /tmp/dovecote-redis.pid
fi

# Bounded wait (30 s), polling every 0.2 s.
for _ in $(seq 1 150); do
  if pong; then
    echo "ensure-redis: Redis is up on 127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.2
done
echo "ensure-redis: Redis did not answer on 127.0.0.1:$PORT; see /tmp/dovecote-redis.log" >&2
exit 1
