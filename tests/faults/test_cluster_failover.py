"""Failover on the 3-node RabbitMQ cluster of scripts/rabbitmq-cluster.sh, with
real faults (``rabbitmqctl -n NODE stop_app``) while a load of confirmed casts,
calls and notifications runs from several threads, on quorum queues (topic,
notification, reply and fanout queues alike):

1. the node the RPC server's and the notification listener's connections are
   on is stopped (it also leads their queues: a quorum queue's leader is placed
   on the node of the client that declared it);
2. the node leading the notification queue (and the RPC topic queue) is
   stopped, while the listeners' connections are on another node: only the
   queues fail over, no connection is lost.

Each test prints what was sent, handled, lost and duplicated, and how long the
service took to recover (from the stop to the first call, cast and notification
sent after the stop that succeeded or was handled). It asserts: nothing
confirmed is lost (a cast or notification that returned without an error is
handled at least once; duplicates are counted, not failed), calls succeed
again within ``CALL_RECOVERY_BOUND`` seconds of the stop, and every call sent
after that first success succeeds.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog.testing
from conftest import CLUSTER_NODES

import dovecote
from dovecote import Target

#: One xdist worker runs the cluster's tests one after the other (``--dist loadgroup``),
#: and each holds the cluster's fault lock (``cluster_nodes_back``) while it stops nodes.
pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.timeout(90, func_only=True),
              pytest.mark.xdist_group("cluster"), pytest.mark.usefixtures("cluster_nodes_back")]

#: Quorum queues everywhere, fast reconnection, short connect timeout.
OPTIONS = ("rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true"
           "&rabbit_retry_interval=0.1&rabbit_retry_backoff=0.2&rabbit_interval_max=1"
           "&connect_timeout=2&heartbeat_timeout_threshold=10")
#: Calls succeed again within this many seconds of the stop.
CALL_RECOVERY_BOUND = 20.0
CALL_TIMEOUT = 5
#: Sender threads of each kind.
THREADS = 3
#: Once calls, casts and notifications have all recovered, the load goes on
#: until this many more calls have succeeded.
CALLS_AFTER_RECOVERY = 60
#: Before the fault, the load runs until this many calls have succeeded.
CALLS_BEFORE_FAULT = 30
PORT_NODE = {port: node for node, port in CLUSTER_NODES.items()}


def ctl(*args: str) -> str:
    """``rabbitmqctl -q ARGS`` (a failure raises); its output."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


def leader_of(queue: str, ask: str) -> str:
    """The node leading quorum queue ``queue`` (asking node ``ask``)."""
    for line in ctl("-n", ask, "list_queues", "name", "leader").splitlines():
        name, _, leader = line.partition("\t")
        if name == queue:
            return leader.strip()
    raise AssertionError(f"no queue {queue} on the cluster")


def connected_nodes(transport: dovecote.Transport) -> set[str]:
    """The nodes the listeners of ``transport`` are connected to (from the
    server port their sockets are connected to)."""
    nodes = set()
    for listener in list(transport.driver._listeners):  # type: ignore[attr-defined]
        conn = listener._conn._connection  # never kombu's .connection: it would connect
        if conn is not None and conn.sock is not None:
            nodes.add(PORT_NODE[conn.sock.getpeername()[1]])
    return nodes


@dataclass
class Tally:
    """What one kind of message did: when each was sent, whether its send
    returned without error, and each time it was handled."""

    sent: dict[int, float] = field(default_factory=dict)  # i -> when the send started
    confirmed: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    handled: list[tuple[int, float]] = field(default_factory=list)

    def recovered(self, stop: float) -> float | None:
        """Seconds from ``stop`` to the first message sent after it that was
        handled (``None``: none was)."""
        after = [at for i, at in self.handled if self.sent.get(i, 0) >= stop]
        return min(after) - stop if after else None

    def longest_pause(self, since: float) -> float:
        """The longest time without a message handled, from ``since`` on."""
        times = sorted(at for _, at in self.handled)
        before = [at for at in times if at < since]
        times = [before[-1] if before else since, *(at for at in times if at >= since)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def report(self) -> dict[str, int]:
        ids = [i for i, _ in self.handled]
        return {"sent": len(self.confirmed), "failed": len(self.failed),
                "handled": len(set(ids)), "lost": len(self.confirmed - set(ids)),
                "duplicated": len(ids) - len(set(ids))}


class Load:
    """Threads sending casts, calls and notifications until :meth:`finish`,
    and the endpoints that record what the server and listener handled."""

    def __init__(self, client: Any, notifier: Any) -> None:
        self.client, self.notifier = client, notifier
        self.casts, self.calls, self.notes = Tally(), Tally(), Tally()
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.errors: list[str] = []
        self._next = 0
        self._threads: list[threading.Thread] = []

    # -- endpoints --------------------------------------------------------------
    def tick(self, ctxt: Any, i: int) -> None:
        self._handled(self.casts, i)

    def echo(self, ctxt: Any, i: int) -> int:
        return i

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self._handled(self.notes, payload)

    def _handled(self, tally: Tally, i: int) -> None:
        with self.cond:
            tally.handled.append((i, time.monotonic()))
            self.cond.notify_all()

    # -- senders ----------------------------------------------------------------
    def _new(self, tally: Tally) -> int:
        with self.cond:
            self._next += 1
            tally.sent[self._next] = time.monotonic()
            return self._next

    def _send(self, tally: Tally, send: Callable[[int], None], *, handled_on_return: bool,
              ) -> None:
        while not self.done.is_set():
            i = self._new(tally)
            try:
                send(i)
            except Exception as exc:  # counted; the load goes on
                with self.cond:
                    tally.failed.add(i)
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    self.cond.notify_all()
            else:
                with self.cond:
                    tally.confirmed.add(i)
                    if handled_on_return:
                        tally.handled.append((i, time.monotonic()))
                    self.cond.notify_all()

    def start(self) -> None:
        senders = [
            (self.casts, lambda i: self.client.cast({}, "tick", i=i), False),
            (self.calls, self._call, True),
            (self.notes, lambda i: self.notifier.info({}, "cluster.test", i), False),
        ]
        for n in range(THREADS):
            for tally, send, on_return in senders:
                thread = threading.Thread(target=self._send, args=(tally, send),
                                          kwargs={"handled_on_return": on_return},
                                          name=f"load-{n}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _call(self, i: int) -> None:
        assert self.client.call({}, "echo", i=i) == i

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def calls_ok(self) -> int:
        return len(self.calls.confirmed)

    def finish(self) -> None:
        self.done.set()
        for thread in self._threads:
            thread.join(CALL_TIMEOUT + 30)
            assert not thread.is_alive(), "a sender is stuck"


@contextlib.contextmanager
def service(url: str, topic: str, load: Load) -> Iterator[dovecote.Transport]:
    """An RPC server (``topic``, server ``s1``) and a notification listener
    (``topic.info``) on one transport, as one service process has them."""
    transport = dovecote.get_transport(url)
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [load])
    listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [load])
    server.start()
    listener.start()
    try:
        yield transport
    finally:
        for each in (server, listener):
            each.stop()
        for each in (server, listener):
            each.wait(30)
        transport.cleanup()


def forget(topic: str) -> None:
    """Delete the test's durable queues, through any node that runs."""
    import amqp

    for port in CLUSTER_NODES.values():
        try:
            conn = amqp.Connection(host=f"127.0.0.1:{port}", userid="guest", password="guest",
                                   connect_timeout=2)
            conn.connect()
        except OSError:
            continue
        try:
            for name in (topic, f"{topic}.s1", f"{topic}.info"):
                channel = conn.channel()
                channel.queue_delete(name)
                channel.close()
        finally:
            conn.close()
        return


def run_fault(rabbit_cluster: str, topic: str, choose: Callable[[dovecote.Transport], str],
              scenario: str, prepare: Callable[[], None] | None = None) -> dict[str, int]:
    """Run the load against a service, stop the node ``choose`` picks, check
    and print what came through; the driver's log events, counted by name."""
    url = f"{rabbit_cluster}?{OPTIONS}"
    if prepare is not None:
        prepare()
    client_transport = dovecote.get_transport(url)
    client = dovecote.get_rpc_client(client_transport, Target(topic=topic), timeout=CALL_TIMEOUT)
    notifier = dovecote.Notifier(client_transport, publisher_id="cluster", topics=[topic])
    load = Load(client, notifier)
    tallies = (("casts", load.casts), ("calls", load.calls), ("notifications", load.notes))
    stopped_node = ""
    try:
        with structlog.testing.capture_logs() as logs, service(url, topic, load) as transport:
            load.start()
            assert load.wait(lambda: load.calls_ok() >= CALLS_BEFORE_FAULT, 30), load.errors[:5]
            stopped_node = choose(transport)
            stop = time.monotonic()
            ctl("-n", stopped_node, "stop_app")
            down = time.monotonic()  # the node is down; recovery is measured from here

            def recovered() -> bool:
                return all(tally.recovered(down) is not None for _, tally in tallies)

            recovered_in_time = load.wait(recovered, CALL_RECOVERY_BOUND)
            ok = load.calls_ok()
            load.wait(lambda: load.calls_ok() >= ok + CALLS_AFTER_RECOVERY, 30)
            load.finish()
            confirmed = load.casts.confirmed | load.notes.confirmed
            load.wait(lambda: confirmed <= {i for i, _ in load.casts.handled + load.notes.handled},
                      30)
            reconnected = sorted(connected_nodes(transport))
    finally:
        load.done.set()
        client_transport.cleanup()
        forget(topic)
    events = collections.Counter(str(e["event"]) for e in logs)
    print(f"\n{scenario}: stopped {stopped_node} (stop_app took {down - stop:.1f} s); "
          f"listeners now on {reconnected}; "
          f"connections lost: {events['listener.connection_lost']} listener, "
          f"{events['reply.connection_lost']} reply, "
          f"publish retries: {events['connection.retrying']}")
    for name, tally in tallies:
        took = tally.recovered(down)
        print(f"  {name}: {tally.report()}, longest pause {tally.longest_pause(stop):.2f} s, "
              f"first sent after the stop handled after "
              f"{'never' if took is None else f'{took:.2f} s'}")
    if load.errors:
        print(f"  errors: {collections.Counter(load.errors).most_common(5)}")
    recovery = {name: tally.recovered(down) for name, tally in tallies}
    assert recovered_in_time, f"not recovered within {CALL_RECOVERY_BOUND} s: {recovery}"
    first_call = recovery["calls"]
    assert first_call is not None
    assert first_call <= CALL_RECOVERY_BOUND
    assert load.casts.report()["lost"] == 0, sorted(load.casts.confirmed - {
        i for i, _ in load.casts.handled})[:20]
    assert load.notes.report()["lost"] == 0, sorted(load.notes.confirmed - {
        i for i, _ in load.notes.handled})[:20]
    # every call sent after the first one that succeeded after the stop succeeded
    back = down + first_call
    late_failures = sorted(i for i in load.calls.failed if load.calls.sent[i] >= back)
    assert late_failures == [], f"{len(late_failures)} calls failed after the recovery"
    return dict(events)


def test_stopping_the_node_the_listeners_are_connected_to(
        rabbit_cluster: str, topic: str) -> None:
    def choose(transport: dovecote.Transport) -> str:
        nodes = connected_nodes(transport)
        assert len(nodes) == 1, f"the listeners are on {nodes}"  # both on the first host
        return nodes.pop()

    run_fault(rabbit_cluster, topic, choose, "listeners' node stopped")


def test_stopping_the_node_leading_the_notification_queue(
        rabbit_cluster: str, topic: str) -> None:
    """The queues are declared first through the second node (which then leads
    them), and the service connects to the first: stopping the leader moves
    the queues' leadership, and no connection of the service is lost."""
    second = list(CLUSTER_NODES)[1]

    def prepare() -> None:
        ports = list(CLUSTER_NODES.values())
        hosts = ",".join(f"guest:guest@127.0.0.1:{port}" for port in [*ports[1:], ports[0]])
        with service(f"rabbit://{hosts}/?{OPTIONS}", topic, Load(None, None)):
            pass

    def choose(transport: dovecote.Transport) -> str:
        leader = leader_of(f"{topic}.info", next(iter(CLUSTER_NODES)))
        assert leader == second, f"{topic}.info is led by {leader}"
        assert second not in connected_nodes(transport)
        return leader

    events = run_fault(rabbit_cluster, topic, choose, "notification queue's leader stopped",
                       prepare)
    assert "listener.connection_lost" not in events  # only the queues moved
