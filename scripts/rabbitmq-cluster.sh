#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on loopback for the failover tests (tests marked
# `cluster`), beside the single test broker of scripts/ensure-rabbitmq.sh, from the
# same Debian package (installed when missing):
#
#   bash scripts/rabbitmq-cluster.sh start    # start (or repair) the cluster
#   bash scripts/rabbitmq-cluster.sh status   # which nodes run; non-zero unless all three
#   bash scripts/rabbitmq-cluster.sh stop     # stop the three nodes, remove their data
#
# Node cN (N = 1..3) is dovecote-cN@localhost, AMQP on 127.0.0.1:570N, Erlang
# distribution on 2570N, with its own config, enabled-plugins, environment, data and
# log files under ${DOVECOTE_CLUSTER_DIR:-/var/lib/rabbitmq/dovecote-cluster}/cN.
# Each node gets an environment file of its own (RABBITMQ_CONF_ENV_FILE), so it never
# reads NODENAME from /etc/rabbitmq/rabbitmq-env.conf, and a config file of its own
# (RABBITMQ_CONFIG_FILE), so it never opens the single broker's 5672/5671 listeners.
# The nodes run as the rabbitmq user (they share its Erlang cookie with rabbitmqctl),
# detached, since no service manager runs here; c2 and c3 join c1 with
# stop_app / reset / join_cluster / start_app. Waits are bounded and poll
# `rabbitmqctl await_startup`. `start` does nothing when the cluster runs, and
# starts the app of a node whose app was stopped; `stop` leaves nothing behind, so
# the next start is a fresh cluster. start and stop take a lock (${DIR}.lock).
set -euo pipefail

DIR=${DOVECOTE_CLUSTER_DIR:-/var/lib/rabbitmq/dovecote-cluster}
NODES=(c1 c2 c3)

amqp_port() { echo "570${1#c}"; }
dist_port() { echo "2570${1#c}"; }
log() { echo "rabbitmq-cluster: $*"; }
# shellcheck source=scripts/rabbitmq-lib.sh
source "$(dirname "$0")/rabbitmq-lib.sh"

write_files() {  # the node's own environment, config and enabled-plugins files
  write_node_files "$1" "" \
    "# Two of three nodes keep serving; a node cut off from both pauses itself." \
    "cluster_partition_handling = pause_minority" \
    "# Three nodes share one machine with the single test broker: each keeps to a little." \
    "vm_memory_high_watermark.absolute = 1GB" \
    "disk_free_limit.absolute = 50MB" \
    "# A new queue's leader is on the node its declaring client is connected to." \
    "queue_leader_locator = client-local" \
    "# Smaller Raft write-ahead log: less memory held per node." \
    "raft.wal_max_size_bytes = 64000000"
}

running_members() {  # the running nodes of c1's cluster, one a line
  ctl c1 cluster_status --formatter json 2>/dev/null | python3 -c '
import json, sys
print("\n".join(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null || true
}

cluster_complete() {
  port_open "$(dist_port c1)" && [ "$(running_members | grep -c '^dovecote-c[123]@localhost$')" = 3 ]
}

cmd_status() {
  local all=0 node state
  for node in "${NODES[@]}"; do
    if app_up "$node"; then state=running
    elif vm_up "$node"; then state="app stopped"; all=1
    else state=down; all=1
    fi
    echo "$(node_name "$node") 127.0.0.1:$(amqp_port "$node"): $state"
  done
  if [ "$all" = 0 ]; then
    echo "cluster running nodes: $(running_members | tr '\n' ' ')"
    cluster_complete || all=1
  fi
  return "$all"
}

cmd_start() {
  local started=$SECONDS node pids=() fresh=()
  if cluster_complete; then
    log "the cluster already runs"
    return 0
  fi
  install_if_missing
  for node in "${NODES[@]}"; do
    if ! vm_up "$node"; then
      [ -d "$DIR/$node/mnesia/$(node_name "$node")" ] || fresh+=("$node")
      write_files "$node"
      log "starting $(node_name "$node") on 127.0.0.1:$(amqp_port "$node")"
      start_vm "$node"
    elif ! app_up "$node"; then
      log "starting the app of $(node_name "$node")"
      ctl "$node" start_app >/dev/null
    fi
  done
  for node in "${NODES[@]}"; do
    await_app "$node" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  log "booted (at $((SECONDS - started)) s)"
  # c2 and c3 join c1 unless they already belong to its cluster
  local members
  members=$(ctl c1 cluster_status --formatter json | python3 -c '
import json, sys
print("\n".join(json.load(sys.stdin).get("disk_nodes", [])))')
  # One node at a time: two nodes joining c1 at once can fail each other's
  # join (seen once in three runs on a loaded machine); a failed join is tried
  # again, at most three times.
  for node in c2 c3; do
    if ! grep -qx "$(node_name "$node")" <<<"$members"; then
      log "joining $(node_name "$node") to $(node_name c1)"
      local attempt joined=""
      for attempt in 1 2 3; do
        if { ctl "$node" stop_app &&
             ctl "$node" join_cluster "$(node_name c1)" && ctl "$node" start_app
           } >/dev/null 2>&1; then
          joined=yes
          break
        fi
        log "$(node_name "$node"): join attempt $attempt failed"
        ctl "$node" start_app >/dev/null 2>&1 || true
        sleep 1
      done
      [ -n "$joined" ] || { log "$(node_name "$node") could not join" >&2; exit 1; }
      await_app "$node"
    fi
  done
  log "joined (at $((SECONDS - started)) s)"
  local deadline=$((SECONDS + BOOT_TIMEOUT))
  until cluster_complete; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the cluster did not form: $(running_members | tr '\n' ' ')" >&2
      return 1
    fi
    sleep 0.2
  done
  log "3 nodes running on 127.0.0.1:5701-5703 (in $((SECONDS - started)) s)"
}

cmd_stop() {
  local node pids=()
  for node in "${NODES[@]}"; do
    stop_node "$node" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  rmdir "$DIR" 2>/dev/null || true
  log "stopped"
}

# Starts and stops are serialized (test sessions of several engineers may share
# the machine); the test fixture holds the lock itself and says so.
if [ "${1:-}" != status ] && [ -z "${DOVECOTE_CLUSTER_LOCKED:-}" ]; then
  mkdir -p "$(dirname "$DIR")"
  exec 9>>"${DIR%/}.lock"
  flock 9
fi

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
