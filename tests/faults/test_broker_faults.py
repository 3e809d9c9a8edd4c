"""Real broker faults on every broker transport (``rabbit://`` and ``amqp1://``),
against servers built of real actors: a server whose credit is spent or which
is draining keeps its connection alive through short heartbeats; the broker
closing every connection is noticed and served through; an idle reply
receiver stays connected; a broker outage cannot make ``stop()``/``wait()``
hang. Connections are dropped on a vhost of the test process's own
(``drop_vhost``); the broker outage is a real ``stop_app`` of a RabbitMQ node of
the test session's own (``own_node``), never of the shared broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
import structlog
from _rpc_support import PATIENCE, QueueProbe, Recorder, serve, wait_until
from conftest import DROP_VHOST, OwnNode, rabbitmqctl

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120), pytest.mark.usefixtures("no_deaths")]

#: Per broker transport: the URL (a broker's port and vhost to fill in) with a 1 s
#: heartbeat and fast reconnection, and the events that say a connection was lost.
BROKERS = {
    "rabbit": (("rabbit://guest:guest@127.0.0.1:{port}/{vhost}?heartbeat_timeout_threshold=1"
                "&rabbit_retry_interval=0.1&rabbit_retry_backoff=0.1&rabbit_interval_max=0.5"
                "&connect_timeout=2"),
               {"listener.connection_lost", "reply.connection_lost"}),
    "amqp1": (("amqp1://guest:guest@127.0.0.1:{port}/{vhost}?heartbeat=1&reconnect_delay=0.05"
               "&reconnect_max_delay=0.5&connect_timeout=2"),  # heartbeat: 2 s, the least
              {"listener.reconnecting", "replies.reconnecting"}),
}


@pytest.fixture(params=list(BROKERS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> tuple[int, str]:
    """Where the test's transport connects, ``(port, vhost)``: this session's own
    node for a test that stops its broker (it asks for ``own_node``), else the
    shared broker's vhost of this process's own (``drop_vhost``)."""
    if "own_node" in request.fixturenames:
        node: OwnNode = request.getfixturevalue("own_node")
        return node.port, ""
    return 5672, request.getfixturevalue("drop_vhost")


@pytest.fixture
def transport(kind: str, broker: tuple[int, str]) -> Iterator[dovecote.Transport]:
    port, vhost = broker
    transport = dovecote.get_transport(BROKERS[kind][0].format(port=port, vhost=vhost))
    yield transport
    transport.cleanup()


@pytest.fixture(autouse=True)
def _forget_queues(transport: dovecote.Transport, broker: tuple[int, str],
                   topic: str) -> Iterator[None]:
    yield
    port, vhost = broker
    conn = amqp.Connection(host=f"127.0.0.1:{port}", userid="guest", password="guest",
                           virtual_host=vhost or "/")
    conn.connect()
    try:
        for name in (topic, f"{topic}.s1", f"{topic}.info"):
            channel = conn.channel()
            channel.queue_delete(name)
            channel.close()
    finally:
        conn.close()


def lost(logs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in BROKERS[kind][1]]


class Slow:
    """Holds the first notification ``hold`` seconds (longer than two
    heartbeats): the listener must keep the connection alive meanwhile."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.entered = threading.Event()
        self.handled = Recorder()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        if not self.entered.is_set():
            self.entered.set()
            threading.Event().wait(self.hold)  # slow work
        self.handled.add(payload)


@pytest.mark.parametrize("phase", ["no_credit", "draining"])
def test_a_busy_listener_keeps_its_connection_alive(
    transport: dovecote.Transport, topic: str, kind: str, phase: str,
) -> None:
    """``max_in_flight=1`` and an endpoint busy for 3.5 s with a 1 s heartbeat:
    without credit to poll, and while draining for ``stop()``, the listener
    still services its connection: nothing is lost, nothing handled twice."""
    slow = Slow(3.5)
    with structlog.testing.capture_logs() as logs:
        listener = dovecote.get_notification_listener(
            transport, [Target(topic=topic)], [slow], max_in_flight=1, max_workers=1)
        listener.start()
        try:
            notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
            notifier.info({}, "e", 0)
            if phase == "no_credit":
                notifier.info({}, "e", 1)
            assert slow.entered.wait(PATIENCE)
            if phase == "draining":
                listener.stop()
            assert slow.handled.wait_for(2 if phase == "no_credit" else 1, 10)
        finally:
            listener.stop()
            assert listener.wait(10)
    assert slow.handled.items == ([0, 1] if phase == "no_credit" else [0])
    assert not lost(logs, kind), lost(logs, kind)
    with QueueProbe(transport, vhost=DROP_VHOST) as probe:
        assert probe.depth(f"{topic}.info") == 0  # acknowledged, not redelivered


class Api:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_a_server_notices_its_connections_closed_and_serves_on(
    transport: dovecote.Transport, topic: str, kind: str,
) -> None:
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="before") == "before"
        rabbitmqctl("close_all_connections", "--vhost", DROP_VHOST, "test")
        assert wait_until(lambda: lost(logs, kind), timeout=10), "nobody noticed"
        started = time.monotonic()
        assert client.call({}, "echo", value="after") == "after"
        assert time.monotonic() - started < 8  # served again, not after a call timeout


def test_an_idle_reply_receiver_stays_connected(
    transport: dovecote.Transport, topic: str, kind: str,
) -> None:
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert client.call({}, "echo", value=1) == 1
        threading.Event().wait(3.0)  # idle for three heartbeats
        assert client.call({}, "echo", value=2) == 2
    assert not lost(logs, kind), lost(logs, kind)


def test_stop_and_wait_are_bounded_through_a_broker_outage(
    own_node: OwnNode, transport: dovecote.Transport, topic: str, kind: str,
) -> None:
    """The broker goes down (``stop_app`` of the node the transport uses, this
    session's own) while a call is being handled: its reply cannot be sent, and
    is given up after a bounded number of retries; ``stop()`` returns at once
    and ``wait()`` completes; nothing hangs."""
    entered, release = threading.Event(), threading.Event()

    class Blocked:
        def hold(self, ctxt: Any) -> str:
            entered.set()
            release.wait(30)
            return "late"

    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Blocked()])
    server.start()
    try:
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=60)
        future = client.call_async({}, "hold")
        assert entered.wait(PATIENCE)
        own_node.ctl("stop_app")
        release.set()
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 0.5
        assert server.wait(45), "the server did not stop during the outage"
    finally:
        release.set()
        own_node.back()
    assert future is not None  # its caller times out; nobody waits for it here
