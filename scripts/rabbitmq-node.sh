#!/usr/bin/env bash
# A RabbitMQ node of a test's own, for fault tests that stop a broker, raise an
# alarm or drop every connection (so they never disturb tests on the shared broker):
#
#   bash scripts/rabbitmq-node.sh start NAME PORT   # start (or repair) node NAME
#   bash scripts/rabbitmq-node.sh status NAME       # non-zero unless its app runs
#   bash scripts/rabbitmq-node.sh stop NAME         # stop it, remove its data
#
# Node NAME is dovecote-NAME@localhost, AMQP 0-9-1 and 1.0 (rabbitmq_amqp1_0) on
# 127.0.0.1:PORT, Erlang distribution on PORT+20000, its files under
# ${DOVECOTE_NODES_DIR:-/var/lib/rabbitmq/dovecote-nodes}/NAME. Waits are bounded.
# start and stop of one NAME take a lock (${DIR}/NAME.lock).
set -euo pipefail

DIR=${DOVECOTE_NODES_DIR:-/var/lib/rabbitmq/dovecote-nodes}
log() { echo "rabbitmq-node: $*"; }
amqp_port() { cat "$DIR/$1.port"; }
dist_port() { echo $(($(amqp_port "$1") + 20000)); }
# shellcheck source=scripts/rabbitmq-lib.sh
source "$(dirname "$0")/rabbitmq-lib.sh"

usage() { echo "usage: $0 start NAME PORT | status NAME | stop NAME" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1 node=$2
[[ "$node" =~ ^[a-z0-9-]+$ ]] || { echo "rabbitmq-node: NAME is [a-z0-9-]+" >&2; exit 2; }
mkdir -p "$DIR"
[ "$command" = status ] || { exec 9>>"$DIR/$node.lock"; flock 9; }

case "$command" in
  start)
    [ $# -eq 3 ] && [[ "$3" =~ ^[0-9]+$ ]] || usage
    echo "$3" > "$DIR/$node.port"
    if app_up "$node"; then
      log "$(node_name "$node") already runs on 127.0.0.1:$3"
      exit 0
    fi
    install_if_missing
    if vm_up "$node"; then
      ctl "$node" start_app >/dev/null
    else
      write_node_files "$node" "rabbitmq_amqp1_0" \
        "vm_memory_high_watermark.absolute = 1GB" "disk_free_limit.absolute = 50MB"
      log "starting $(node_name "$node") on 127.0.0.1:$3"
      start_vm "$node"
    fi
    await_app "$node"
    log "$(node_name "$node") runs on 127.0.0.1:$3"
    ;;
  status)
    [ -f "$DIR/$node.port" ] && app_up "$node"
    ;;
  stop)
    if [ -f "$DIR/$node.port" ]; then
      stop_node "$node"
      rm -f "$DIR/$node.port"
    fi
    log "$(node_name "$node") stopped"
    ;;
  *) usage ;;
esac
