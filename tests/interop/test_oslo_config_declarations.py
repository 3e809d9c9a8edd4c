"""One oslo.config file, two libraries: dovecote.oslo declares on RabbitMQ
exactly what oslo.messaging declares for it.

Each library runs the same service (an RPC server, a notification listener,
one call, one fanout cast, one notification) from the same configuration file,
in a virtual host of its own. Then the two vhosts' queues (name, type,
durable, auto-delete, exclusive, arguments) and exchanges (name, type, durable,
auto-delete, arguments) must be the same, the random part of reply and fanout
queue names aside.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

import oslo_messaging
import pytest
from _rpc_support import own_vhost
from oslo_config import cfg

import dovecote.oslo

pytestmark = [pytest.mark.interop, pytest.mark.broker, pytest.mark.timeout(120)]

#: [oslo_messaging_rabbit] sections operators write for durable, quorum,
#: transient-quorum and stream set-ups.
CONFIG_FILES: dict[str, str] = {
    "durable": "amqp_durable_queues = true\n",
    "durable_ha_ttl": "amqp_durable_queues = true\nrabbit_ha_queues = true\n"
                      "rabbit_transient_queues_ttl = 600\n",
    "quorum": "rabbit_quorum_queue = true\nrabbit_quorum_delivery_limit = 3\n"
              "rabbit_quorum_max_memory_length = 100\n"
              "rabbit_quorum_max_memory_bytes = 1048576\n",
    "transient_quorum_stream": "rabbit_quorum_queue = true\n"
                               "rabbit_transient_quorum_queue = true\n"
                               "rabbit_stream_fanout = true\n"
                               "rabbit_qos_prefetch_count = 10\n",
    "auto_delete": "amqp_auto_delete = true\n",
}

UUID = re.compile(r"[0-9a-f]{32}")


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def _declared(vhost: str) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """The vhost's queues and (non-default) exchanges, random names made alike."""
    queues = {
        tuple(UUID.sub("<uuid>", col) for col in line.split("\t"))
        for line in _rabbitmqctl("list_queues", "--no-table-headers", "-p", vhost, "name",
                                 "type", "durable", "auto_delete", "exclusive",
                                 "arguments").splitlines()
    }
    exchanges = {
        tuple(line.split("\t"))
        for line in _rabbitmqctl("list_exchanges", "--no-table-headers", "-p", vhost, "name",
                                 "type", "durable", "auto_delete", "arguments").splitlines()
        if line.split("\t")[0] and not line.startswith("amq.")
    }
    return queues, exchanges


class Endpoint:
    def ping(self, ctxt: dict[str, Any]) -> str:
        return "pong"

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
             payload: Any, metadata: Any) -> None:
        return None


def _run_service(lib: Any, config: pathlib.Path, vhost: str) -> tuple[
        set[tuple[str, ...]], set[tuple[str, ...]]]:
    """What an OpenStack service does at start, from its configuration file;
    returns what is declared while it runs."""
    conf = cfg.ConfigOpts()
    if lib is oslo_messaging:  # groups it reads from the global config
        from oslo_messaging._metrics.client import oslo_messaging_metrics
        from oslo_messaging._tracing.client import oslo_messaging_tracing

        conf.register_opts(oslo_messaging_metrics, group="oslo_messaging_metrics")
        conf.register_opts(oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf(["--config-file", str(config)], project="decl")
    rpc = lib.get_rpc_transport(conf)
    notifications = lib.get_notification_transport(conf)
    server = lib.get_rpc_server(rpc, lib.Target(topic="compute", server="host1"), [Endpoint()],
                                executor="threading")
    listener = lib.get_notification_listener(
        notifications, [lib.Target(topic="notifications")], [Endpoint()], executor="threading")
    server.start()
    listener.start()
    try:
        client = lib.get_rpc_client(rpc, lib.Target(topic="compute"), timeout=15)
        assert client.call({}, "ping") == "pong"
        client.prepare(fanout=True).cast({}, "ping")
        lib.Notifier(notifications, publisher_id="decl.host1").info({}, "decl.started", {})
        return _declared(vhost)
    finally:
        for each in (server, listener):
            each.stop()
            each.wait()
        rpc.cleanup()
        notifications.cleanup()


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_a_config_file_makes_dovecote_declare_what_oslo_messaging_declares(
    name: str, rabbitmq: str, tmp_path: pathlib.Path,
) -> None:
    declared: dict[str, tuple[set[tuple[str, ...]], set[tuple[str, ...]]]] = {}
    for label, lib in (("oslo.messaging", oslo_messaging), ("dovecote.oslo", dovecote.oslo)):
        with own_vhost("dovecote_decl") as vhost:
            config = tmp_path / f"{label}.conf"
            config.write_text(
                f"[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/{vhost}\n"
                f"control_exchange = decl\n\n"
                f"[oslo_messaging_notifications]\ndriver = messagingv2\n\n"
                f"[oslo_messaging_rabbit]\n{CONFIG_FILES[name]}")
            declared[label] = _run_service(lib, config, vhost)
    oslo_queues, oslo_exchanges = declared["oslo.messaging"]
    ours_queues, ours_exchanges = declared["dovecote.oslo"]
    assert any(q[0] == "compute" for q in oslo_queues), oslo_queues  # the service ran
    assert ours_queues == oslo_queues, (
        f"only oslo.messaging: {sorted(oslo_queues - ours_queues)}; "
        f"only dovecote: {sorted(ours_queues - oslo_queues)}")
    assert ours_exchanges == oslo_exchanges, (
        f"only oslo.messaging: {sorted(oslo_exchanges - ours_exchanges)}; "
        f"only dovecote: {sorted(ours_exchanges - oslo_exchanges)}")
