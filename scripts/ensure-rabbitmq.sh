#!/usr/bin/env bash
# Make sure the test RabbitMQ answers: AMQP 0-9-1 and 1.0 on 127.0.0.1:5672, and the
# same over TLS on 127.0.0.1:5671 (a private CA made by scripts/make-test-certs.py,
# EXTERNAL authentication with a client certificate). Installs Debian's
# rabbitmq-server when missing and starts it detached (no service manager runs
# here); restarts a broker that runs without the TLS listener. Safe to run again: it
# does nothing when both ports answer.
set -euo pipefail
cd "$(dirname "$0")/.."

TLS_DIR=${DOVECOTE_TEST_TLS_DIR:-/etc/rabbitmq/dovecote-tls}
PY=$(command -v python || command -v python3)

port_open() {
  "$PY" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

wait_for() {  # wait_for up|down PORT...
  for _ in $(seq 1 90); do
    local ok=1
    for port in "${@:2}"; do
      if [ "$1" = up ]; then port_open "$port" || ok=0; else ! port_open "$port" || ok=0; fi
    done
    [ "$ok" = 1 ] && return 0
    # await_startup blocks until the node has booted; it fails at once while the
    # node's Erlang VM is still starting, hence the loop.
    rabbitmqctl --timeout 5 await_startup >/dev/null 2>&1 || "$PY" -c "import time; time.sleep(1)"
  done
  return 1
}

if port_open 5672 && port_open 5671; then
  echo "ensure-rabbitmq: a broker already answers on 127.0.0.1:5672 and :5671 (TLS)"
  exit 0
fi

export RABBITMQ_NODENAME=rabbit@localhost
export HOME=${HOME:-/root}

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "ensure-rabbitmq: installing rabbitmq-server"
  bash scripts/apt-install.sh rabbitmq-server
fi

echo "ensure-rabbitmq: certificates in $TLS_DIR"
"$PY" scripts/make-test-certs.py "$TLS_DIR"

mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq-env.conf <<CONF
NODENAME=rabbit@localhost
CONF
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.1 = 127.0.0.1:5672
listeners.ssl.1 = 127.0.0.1:5671
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
CONF
rabbitmq-plugins enable --offline rabbitmq_amqp1_0 rabbitmq_auth_mechanism_ssl >/dev/null

if port_open 5672; then
  echo "ensure-rabbitmq: restarting the broker with its TLS listener"
  rabbitmqctl stop >/dev/null 2>&1 || true
  wait_for down 5672 || { echo "ensure-rabbitmq: the broker did not stop" >&2; exit 1; }
fi

echo "ensure-rabbitmq: starting rabbitmq-server"
rabbitmq-server -detached
if ! wait_for up 5672 5671; then
  echo "ensure-rabbitmq: the broker did not come up; see /var/log/rabbitmq/" >&2
  exit 1
fi
rabbitmqctl --timeout 30 await_startup >/dev/null
# The user a client certificate (CN dovecote-client) logs in as with EXTERNAL.
rabbitmqctl add_user dovecote-client "$("$PY" -c 'import secrets; print(secrets.token_hex())')" \
  >/dev/null 2>&1 || true
rabbitmqctl set_permissions -p / dovecote-client ".*" ".*" ".*" >/dev/null
echo "ensure-rabbitmq: broker is up on 127.0.0.1:5672 and :5671 (TLS)"
