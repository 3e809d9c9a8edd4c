"""oslo.messaging's recommended RabbitMQ set-up, on both libraries at once.

For each option set, an oslo.messaging server and a dovecote server listen on
the same topic, configured alike: they declare the same topic queue, the same
fanout exchange and (with ``rabbit_stream_fanout``) the same stream, so any
difference in a declaration argument fails the second one with
``PRECONDITION_FAILED``. Then each library's client calls and casts to the
topic, to each server, and fans out to both: both directions, every time.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest
from _rpc_support import delete_queues
from test_kombu_driver import oslo_conf

import dovecote

pytestmark = [pytest.mark.interop, pytest.mark.broker, pytest.mark.timeout(90)]

OPTION_SETS: dict[str, dict[str, Any]] = {
    "quorum": {"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 5,
               "rabbit_quorum_max_memory_length": 1000},
    "transient_quorum": {"rabbit_quorum_queue": True, "rabbit_transient_quorum_queue": True},
    "stream_fanout": {"rabbit_quorum_queue": True, "rabbit_transient_quorum_queue": True,
                      "rabbit_stream_fanout": True, "rabbit_qos_prefetch_count": 10},
    "queue_manager": {"use_queue_manager": True, "kombu_reconnect_splay": 0.5},
}


class Endpoint:
    def __init__(self, name: str, seen: queue.SimpleQueue[tuple[str, Any]]) -> None:
        self.name = name
        self._seen = seen

    def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    def record(self, ctxt: dict[str, Any], value: Any) -> None:
        self._seen.put((self.name, value))


def _oslo_transport(url: str, options: dict[str, Any], processname: str, lock_dir: str,
                    exchange: str) -> Any:
    from oslo_concurrency import lockutils
    from oslo_messaging._drivers import impl_rabbit

    conf = oslo_conf()
    conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    conf.register_opts(oslo_messaging.transport._transport_opts)
    conf.set_override("control_exchange", exchange)
    for name, value in options.items():
        conf.set_override(name, value, group="oslo_messaging_rabbit")
    if options.get("use_queue_manager"):
        conf.set_override("processname", processname, group="oslo_messaging_rabbit")
        lockutils.set_defaults(lock_dir)
    return oslo_messaging.get_rpc_transport(conf, url=url)


def _dovecote_transport(url: str, options: dict[str, Any], processname: str,
                        exchange: str) -> Any:
    options = dict(options, control_exchange=exchange)
    if options.get("use_queue_manager"):
        options["processname"] = processname
    return dovecote.get_transport(url, **options)


@contextlib.contextmanager
def _serving(lib: Any, transport: Any, topic: str, endpoint: Endpoint) -> Iterator[None]:
    target = lib.Target(topic=topic, server=endpoint.name)
    server = lib.get_rpc_server(transport, target, [endpoint])
    server.start()
    try:
        yield
    finally:
        server.stop()
        if lib is dovecote:
            assert server.wait(10), "the dovecote server did not stop"
        else:
            server.wait()


def _queues(topic: str) -> dict[str, tuple[str, str, str]]:
    """name -> (type, durable, auto_delete) of the broker's queues for ``topic``."""
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "type", "durable",
         "auto_delete"], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.startswith(topic)]
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_oslo_and_dovecote_share_queues_and_talk_both_ways(
    name: str, rabbitmq: str, topic: str,
) -> None:
    options = OPTION_SETS[name]
    lock_dir = tempfile.mkdtemp(prefix="dovecote-oslo-locks-")
    oslo_t = _oslo_transport(rabbitmq, options, f"oslo-{topic}", lock_dir, f"ex_{topic}")
    dc_t = _dovecote_transport(rabbitmq, options, f"dc-{topic}", f"ex_{topic}")
    seen: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    try:
        with _serving(oslo_messaging, oslo_t, topic, Endpoint("oslo", seen)), \
                _serving(dovecote, dc_t, topic, Endpoint("dovecote", seen)):
            queues = _queues(topic)
            if options.get("rabbit_quorum_queue"):
                assert queues[topic][0] == "quorum"
            if options.get("rabbit_stream_fanout"):
                assert queues[f"{topic}_fanout"][0] == "stream"  # one, shared by both
            elif options.get("rabbit_transient_quorum_queue"):
                fanouts = [q for q in queues if q.startswith(f"{topic}_fanout_")]
                assert len(fanouts) == 2
                assert all(queues[q][:3] == ("quorum", "true", "false") for q in fanouts)
            if options.get("use_queue_manager"):
                assert f"{topic}_fanout_{socket.gethostname()}:dc-{topic}:1" in queues, queues

            for client_lib, transport in ((oslo_messaging, oslo_t), (dovecote, dc_t)):
                client = client_lib.get_rpc_client(
                    transport, client_lib.Target(topic=topic), timeout=15)
                assert client.call({}, "whoami") in {"oslo", "dovecote"}
                for server in ("oslo", "dovecote"):
                    assert client.prepare(server=server).call({}, "whoami") == server
                client.cast({}, "record", value="any")
                assert seen.get(timeout=10)[1] == "any"
                client.prepare(fanout=True).cast({}, "record", value="all")
                fanned = sorted(seen.get(timeout=10) for _ in range(2))
                assert fanned == [("dovecote", "all"), ("oslo", "all")], client_lib.__name__
            with pytest.raises(queue.Empty):
                seen.get(timeout=0.3)  # nothing delivered twice
    finally:
        dc_t.cleanup()
        oslo_t.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.oslo", f"{topic}.dovecote", f"{topic}_fanout")
        _delete_exchange(f"ex_{topic}")


def _delete_exchange(name: str) -> None:
    import amqp

    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        conn.channel().exchange_delete(name)
    finally:
        conn.close()


def test_dovecote_stream_listener_and_oslo_stream_listener_read_their_own_offsets(
    rabbitmq: str, topic: str,
) -> None:
    """Both libraries read one stream; a burst of fanout casts reaches each
    listener once, whichever library sent it."""
    options = OPTION_SETS["stream_fanout"]
    oslo_t = _oslo_transport(rabbitmq, options, "", "", f"ex_{topic}")
    dc_t = _dovecote_transport(rabbitmq, options, "", f"ex_{topic}")
    seen: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
    try:
        with _serving(oslo_messaging, oslo_t, topic, Endpoint("oslo", seen)), \
                _serving(dovecote, dc_t, topic, Endpoint("dovecote", seen)):
            senders = [
                oslo_messaging.get_rpc_client(oslo_t, oslo_messaging.Target(topic=topic)),
                dovecote.get_rpc_client(dc_t, dovecote.Target(topic=topic)),
            ]
            # both servers consume: wait until a fanout reaches each of them
            _wait_until_both_consume(senders[1], seen)
            for i in range(50):
                senders[i % 2].prepare(fanout=True).cast({}, "record", value=i)
            got: dict[str, list[int]] = {"oslo": [], "dovecote": []}
            while len(got["oslo"]) + len(got["dovecote"]) < 100:
                server, value = seen.get(timeout=10)
                if value != "probe":  # a late probe
                    got[server].append(value)
            assert sorted(got["oslo"]) == list(range(50))
            assert sorted(got["dovecote"]) == list(range(50))
    finally:
        dc_t.cleanup()
        oslo_t.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.oslo", f"{topic}.dovecote", f"{topic}_fanout")
        _delete_exchange(f"ex_{topic}")


def _wait_until_both_consume(client: Any, seen: queue.SimpleQueue[tuple[str, Any]]) -> None:
    """Fan out probes until each server handled one, then drain the probes."""
    reached: set[str] = set()
    done = threading.Event()
    for _ in range(50):
        client.prepare(fanout=True).cast({}, "record", value="probe")
        with contextlib.suppress(queue.Empty):
            while True:
                server, value = seen.get(timeout=0.2)
                assert value == "probe"
                reached.add(server)
        if reached == {"oslo", "dovecote"}:
            done.set()
            break
    assert done.is_set(), f"only {reached} consumed the stream"
