# Functions the node scripts share (sourced by rabbitmq-cluster.sh and
# rabbitmq-node.sh): one RabbitMQ node of the tests' own, beside the single test
# broker of ensure-rabbitmq.sh, from the same Debian package. A node NAME is
# dovecote-NAME@localhost with its environment, config, enabled-plugins, data and
# logs under $DIR/NAME; it runs as the rabbitmq user (sharing its Erlang cookie with
# rabbitmqctl), detached, since no service manager runs here.
# The caller sets DIR, and defines amqp_port NAME and dist_port NAME.

RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_HOME=/var/lib/rabbitmq  # the rabbitmq user's home: its .erlang.cookie
#: How long a node may take to boot or to start its app (seconds).
BOOT_TIMEOUT=${DOVECOTE_CLUSTER_BOOT_TIMEOUT:-60}
#: Erlang distribution on loopback only.
ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

node_name() { echo "dovecote-$1@localhost"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_rabbitmq() {  # run a command as the rabbitmq user, with its home (and cookie)
  if [ "$(id -u)" = "$(id -u rabbitmq)" ]; then
    env HOME="$RMQ_HOME" "$@"
  else
    runuser -u rabbitmq -- env HOME="$RMQ_HOME" "$@"
  fi
}

ctl() {  # ctl NODE ARGS...: rabbitmqctl against node NODE
  local node=$1
  shift
  as_rabbitmq RABBITMQ_CONF_ENV_FILE="$DIR/$node/rabbitmq-env.conf" \
    "$RMQ_BIN/rabbitmqctl" -q -n "$(node_name "$node")" "$@"
}

vm_up() {  # the node's Erlang VM answers
  port_open "$(dist_port "$1")" && ctl "$1" ping >/dev/null 2>&1
}
app_up() {  # the node's rabbit app runs
  as_rabbitmq "$RMQ_BIN/rabbitmq-diagnostics" -q -n "$(node_name "$1")" check_running \
    >/dev/null 2>&1
}

install_if_missing() {
  if [ ! -x "$RMQ_BIN/rabbitmq-server" ]; then
    log "installing rabbitmq-server"
    bash "$SCRIPTS/apt-install.sh" rabbitmq-server
  fi
}

write_node_files() {  # write_node_files NODE PLUGINS [CONFIG LINES...]: its own files
  local node=$1 plugins=$2 d="$DIR/$1"
  shift 2
  mkdir -p "$d/mnesia" "$d/log"
  cat > "$d/rabbitmq-env.conf" <<CONF
# dovecote test node $node (written by scripts/rabbitmq-lib.sh)
NODENAME=$(node_name "$node")
DIST_PORT=$(dist_port "$node")
CONFIG_FILE=$d/rabbitmq.conf
ENABLED_PLUGINS_FILE=$d/enabled_plugins
MNESIA_BASE=$d/mnesia
LOG_BASE=$d/log
PID_FILE=$d/rabbitmq.pid
CONF
  {
    echo "# dovecote test node $node (written by scripts/rabbitmq-lib.sh)"
    echo "listeners.tcp.1 = 127.0.0.1:$(amqp_port "$node")"
    echo "listeners.ssl = none"
    echo "log.console = false"
    echo "log.file.level = info"
    printf '%s\n' "$@"
  } > "$d/rabbitmq.conf"
  echo "[$plugins]." > "$d/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$d"
}

start_vm() {  # start node $1 detached, with its own environment
  local node=$1 d="$DIR/$1"
  as_rabbitmq RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$(node_name "$node")" RABBITMQ_DIST_PORT="$(dist_port "$node")" \
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${DOVECOTE_CLUSTER_ERL_ARGS:-$ERL_ARGS}" \
    "$RMQ_BIN/rabbitmq-server" -detached 9>&-  # the VM must not hold the caller's lock
}

await_app() {  # wait (bounded) until node $1's app has started
  local node=$1 deadline=$((SECONDS + BOOT_TIMEOUT))
  # Each rabbitmqctl call starts a VM of its own (about a CPU second): wait for the
  # node's distribution port, cheaply, then let one await_startup block.
  until port_open "$(dist_port "$node")" &&
      ctl "$node" --timeout "$BOOT_TIMEOUT" await_startup >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$(node_name "$node") did not start; see $DIR/$node/log/" >&2
      return 1
    fi
    sleep 0.1
  done
}

stop_node() {  # stop node $1's VM (waiting for its process to end), remove its data
  local node=$1 d="$DIR/$1" pid=""
  [ -f "$d/rabbitmq.pid" ] && pid=$(cat "$d/rabbitmq.pid")
  if vm_up "$node"; then
    ctl "$node" stop ${pid:+"$d/rabbitmq.pid"} >/dev/null 2>&1 || true
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true  # the VM this script started, by its pid file
  fi
  rm -rf "$d"
}
