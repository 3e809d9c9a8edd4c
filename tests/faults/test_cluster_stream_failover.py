"""Stream fanout (``rabbit_stream_fanout``) on the 3-node cluster, with real
faults: while fanout casts are sent, the node the listeners are connected to
is stopped (``rabbitmqctl -n NODE stop_app``), then the node leading the
stream. Every listener reads the stream from its own offset and resumes after
the last one it read, so each gets every confirmed cast: casts sent while it
was away wait in the stream.

The test prints sent / handled / lost / duplicated per listener and the time to
recover (from the stop to the first cast sent after it that every listener
handled), and asserts 0 lost and recovery within ``RECOVERY_BOUND`` seconds.
Duplicates are counted as the endpoints see them (a server also drops a
request id it has just seen).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import test_cluster_failover as failover
from conftest import CLUSTER_NODES, cluster_node_back
from test_cluster_failover import connected_nodes, ctl, leader_of

import dovecote
from dovecote import Target

#: One xdist worker runs the cluster's tests one after the other (``--dist loadgroup``),
#: and each holds the cluster's fault lock (``cluster_nodes_back``) while it stops nodes.
pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.timeout(120, func_only=True),
              pytest.mark.xdist_group("cluster"), pytest.mark.usefixtures("cluster_nodes_back")]

#: The quorum failover tests' options, with fanout through a stream.
OPTIONS = f"{failover.OPTIONS}&rabbit_stream_fanout=true"
#: Every listener handles casts again within this many seconds of a stop.
RECOVERY_BOUND = failover.CALL_RECOVERY_BOUND
SERVERS = ("s1", "s2")


class Counting:
    """Counts every fanout cast a server handles."""

    def __init__(self) -> None:
        self.handled: dict[int, int] = {}
        self.at: dict[int, float] = {}  # when each cast was first handled
        self.cond = threading.Condition()

    def record(self, ctxt: Any, value: int) -> None:
        with self.cond:
            self.at.setdefault(value, time.monotonic())
            self.handled[value] = self.handled.get(value, 0) + 1
            self.cond.notify_all()

    def has(self, value: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: value in self.handled, timeout)


class Sender:
    """Fans out numbered casts until stopped; remembers which ones returned
    (confirmed by the broker) and when each was sent."""

    def __init__(self, transport: dovecote.Transport, topic: str) -> None:
        self.client = dovecote.get_rpc_client(transport, Target(topic=topic, fanout=True),
                                              retry=-1)
        self.confirmed: list[int] = []
        self.sent_at: dict[int, float] = {}
        self.failed = 0
        self.progress = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="stream-sender", daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.sent_at[n] = time.monotonic()
            try:
                self.client.cast({}, "record", value=n)
            except dovecote.MessagingException:
                self.failed += 1
            else:
                with self.progress:
                    self.confirmed.append(n)
                    self.progress.notify_all()
            n += 1
            self.stop.wait(0.005)  # a steady load, not a flood


@pytest.fixture
def cluster_transport(rabbit_cluster: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(f"{rabbit_cluster}?{OPTIONS}")
    yield transport
    transport.cleanup()


def _recovered(sender: Sender, endpoints: list[Counting], after: float) -> float:
    """Seconds from ``after`` until every listener handled the first cast sent
    after it (waiting up to ``RECOVERY_BOUND``)."""
    deadline = after + RECOVERY_BOUND

    with sender.progress:  # a cast sent after the stop that the broker confirmed
        ok = sender.progress.wait_for(
            lambda: any(sender.sent_at[n] > after for n in sender.confirmed[-1:]),
            max(0.0, deadline - time.monotonic()))
    assert ok, f"no cast was confirmed within {RECOVERY_BOUND} s of the stop"
    first = min(n for n in list(sender.confirmed) if sender.sent_at[n] > after)
    assert all(e.has(first, max(0.0, deadline - time.monotonic())) for e in endpoints), (
        f"not every listener handled a cast within {RECOVERY_BOUND} s of the stop")
    return max(e.at[first] for e in endpoints) - after


def _in_stream(url: str, stream: str, values: list[int]) -> dict[int, list[int]]:
    """Where each of ``values`` sits in ``stream`` (its offsets, read from the
    first), to tell a cast the broker never stored from one a listener missed."""
    import json

    import amqp

    found: dict[int, list[int]] = {v: [] for v in values}
    conn = amqp.Connection(host="127.0.0.1:5702", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        channel.basic_qos(0, 1000, False)
        seen: list[Any] = []
        channel.basic_consume(stream, callback=seen.append,
                              arguments={"x-stream-offset": "first"})
        while True:
            try:
                conn.drain_events(timeout=2)
            except TimeoutError:
                break
            for message in seen:
                body = json.loads(json.loads(message.body)["oslo.message"])
                if body["args"]["value"] in found:
                    found[body["args"]["value"]].append(message.headers["x-stream-offset"])
                channel.basic_ack(message.delivery_tag)
            seen.clear()
    finally:
        conn.close()
    return found


def test_stream_fanout_survives_the_listeners_node_and_the_stream_leader(
    cluster_transport: dovecote.Transport, rabbit_cluster: str,
) -> None:
    topic = f"stream_{time.monotonic_ns()}"
    stream = f"{topic}_fanout"
    endpoints = [Counting() for _ in SERVERS]
    servers = [dovecote.get_rpc_server(cluster_transport, Target(topic=topic, server=name),
                                       [endpoint], executor="threading")
               for name, endpoint in zip(SERVERS, endpoints, strict=True)]
    for server in servers:
        server.start()
    sender = Sender(cluster_transport, topic)
    figures: list[str] = []
    with structlog.testing.capture_logs() as logs:
        try:
            sender.thread.start()
            started = time.monotonic()
            assert _recovered(sender, endpoints, started) < RECOVERY_BOUND  # all consuming
            ask = next(iter(CLUSTER_NODES))
            for fault in ("the listeners' node", "the stream's leader"):
                nodes = connected_nodes(cluster_transport)
                node = sorted(nodes)[0] if fault == "the listeners' node" else \
                    leader_of(stream, ask)
                ask = next(n for n in CLUSTER_NODES if n != node)
                ctl("-n", node, "stop_app")
                stopped = time.monotonic()  # the node no longer serves
                recovery = _recovered(sender, endpoints, stopped)
                figures.append(f"stopped {fault} ({node}): recovered in {recovery:.2f} s")
                cluster_node_back(node)
        finally:
            sender.stop.set()
            sender.thread.join(30)
            last = sender.confirmed[-1] if sender.confirmed else -1
            for endpoint in endpoints:  # every confirmed cast reaches every listener
                endpoint.has(last, 15)
            for server in servers:
                server.stop()
                server.wait(10)
    dropped = sum(1 for e in logs if e["event"] == "message.duplicate")
    figures.append(f"repeated deliveries the servers dropped by request id: {dropped}")
    confirmed = set(sender.confirmed)
    for name, endpoint in zip(SERVERS, endpoints, strict=True):
        lost = sorted(confirmed - set(endpoint.handled))
        duplicated = sum(count - 1 for count in endpoint.handled.values())
        figures.append(f"{name}: sent {len(confirmed)} confirmed ({sender.failed} raised), "
                       f"handled {len(endpoint.handled)}, lost {len(lost)}, "
                       f"duplicated {duplicated}")
        assert not lost, (f"{name} lost {len(lost)} confirmed fanout casts: {lost[:10]}; "
                          f"in the stream: {_in_stream(rabbit_cluster, stream, lost)}")
    print("\n" + "\n".join(figures))
    ctl("-n", ask, "delete_queue", stream)
