#!/usr/bin/env bash
# Make sure a RabbitMQ broker with the AMQP 1.0 plugin answers on 127.0.0.1:5672.
# Installs Debian's rabbitmq-server when missing and starts it detached (no service
# manager runs here). Safe to run again: it does nothing when the broker answers.
set -euo pipefail

port_open() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

if port_open 5672; then
  echo "ensure-rabbitmq: a broker already answers on 127.0.0.1:5672"
  exit 0
fi

export RABBITMQ_NODENAME=rabbit@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export HOME=${HOME:-/root}

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "ensure-rabbitmq: installing rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server >/dev/null
fi

mkdir -p /etc/rabbitmq
cat > /etc/rabbitmq/rabbitmq-env.conf <<CONF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
CONF
rabbitmq-plugins enable --offline rabbitmq_amqp1_0 >/dev/null

echo "ensure-rabbitmq: starting rabbitmq-server"
rabbitmq-server -detached
for _ in $(seq 1 90); do
  if port_open 5672; then
    echo "ensure-rabbitmq: broker is up on 127.0.0.1:5672"
    exit 0
  fi
  # await_startup blocks until the node has booted; it fails at once while the
  # node's Erlang VM is still starting, hence the loop.
  rabbitmqctl --timeout 5 await_startup >/dev/null 2>&1 || python3 -c "import time; time.sleep(1)"
done
echo "ensure-rabbitmq: the broker did not come up; see /var/log/rabbitmq/" >&2
exit 1
