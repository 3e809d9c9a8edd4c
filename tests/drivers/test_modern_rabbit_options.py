"""oslo.messaging's recommended RabbitMQ options on dovecote alone: what they
declare, how stream fanout resumes, stable queue names across restarts, and
the reconnect splay. (Both libraries together: ``test_interop_modern_options``.)"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _rpc_support import Recorder, delete_queues, reply_queue_of, serve, wait_until
from conftest import DROP_VHOST, rabbitmqctl

import dovecote
from dovecote import Target
from dovecote.drivers.kombu._options import KombuOptions
from dovecote.drivers.kombu._queue_manager import QueueManager

BASE = "rabbit://guest:guest@127.0.0.1:5672/"
FAST = ("heartbeat_timeout_threshold=2&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2"
        "&rabbit_interval_max=1&connect_timeout=2")
STREAM = "rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true"


def _queues(prefix: str, vhost: str = "/") -> dict[str, dict[str, str]]:
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "type",
         "durable", "auto_delete", "arguments"],
        capture_output=True, text=True, check=True, timeout=60).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.startswith(prefix)]
    return {r[0]: {"type": r[1], "durable": r[2], "auto_delete": r[3], "arguments": r[4]}
            for r in rows}


class Api:
    def __init__(self) -> None:
        self.seen = Recorder()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def record(self, ctxt: Any, value: Any) -> None:
        self.seen.add(value)


# -- the options themselves ------------------------------------------------------
@pytest.mark.parametrize(("query", "words"), [
    ("rabbit_stream_fanout=true", "needs rabbit_transient_quorum_queue"),
    (f"{STREAM}&prefetch_count=0", "needs prefetch_count"),
    ("rabbit_transient_quorum_queue=true&rabbit_ha_queues=true", "either quorum or mirrored"),
    ("kombu_reconnect_splay=-1", "must not be negative"),
    ("use_queue_manager=true&processname=", "non-empty hostname and processname"),
])
def test_combinations_oslo_refuses_are_refused_saying_what_to_set(query: str, words: str) -> None:
    with pytest.raises(dovecote.InvalidTransportURL, match=words):
        dovecote.get_transport(f"{BASE}?{query}")


def test_splay_adds_a_random_share_within_its_bound() -> None:
    opts = KombuOptions(kombu_reconnect_splay=0.5)
    delays = [opts.splayed(1.0) for _ in range(2000)]
    assert all(1.0 <= d <= 1.5 for d in delays)
    assert max(delays) - min(delays) > 0.4  # spread, not a constant
    assert KombuOptions().splayed(1.0) == 1.0


def test_queue_manager_names_count_per_service_generation(tmp_path: pathlib.Path) -> None:
    """The same host and process name count on (1, 2, ...) within one process
    group, and start over at 1 in a new one: a restarted service gets the same
    names. The counter file is its owner's only, and a planted link refused."""
    name = f"qm-{os.getpid()}-{time.monotonic_ns()}"
    manager = QueueManager("host-a", name)
    try:
        assert [manager.next_name() for _ in range(3)] == [
            f"host-a:{name}:1", f"host-a:{name}:2", f"host-a:{name}:3"]
        assert manager.path.stat().st_mode & 0o777 == 0o600
        script = ("from dovecote.drivers.kombu._queue_manager import QueueManager as Q;"
                  f"m = Q('host-a', {name!r}); print(m.next_name(), m.next_name())")
        for _ in range(2):  # two "restarts", each a new process group
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                 check=True, timeout=60, start_new_session=True).stdout.split()
            assert out == [f"host-a:{name}:1", f"host-a:{name}:2"]
    finally:
        manager.path.unlink(missing_ok=True)
    trap = QueueManager("host-a", f"{name}-link")
    trap.path.symlink_to(tmp_path / "elsewhere")
    try:
        with pytest.raises(OSError, match="Too many levels of symbolic links"):
            trap.next_name()
        assert not (tmp_path / "elsewhere").exists()
    finally:
        trap.path.unlink()


# -- declarations --------------------------------------------------------------------
@pytest.mark.broker
def test_transient_quorum_queues_for_replies_and_fanout_and_deleted_on_stop(
    rabbitmq: str, topic: str,
) -> None:
    transport = dovecote.get_transport(f"{BASE}?rabbit_transient_quorum_queue=true")
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Api()]):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
            assert client.call({}, "echo", value=1) == 1
            reply_q = reply_queue_of(transport)
            fanout = _queues(f"{topic}_fanout_")
            assert len(fanout) == 1
            (queue,) = fanout.values()
            assert (queue["type"], queue["durable"], queue["auto_delete"]) == (
                "quorum", "true", "false")
            assert '{"x-expires",1800000}' in queue["arguments"]
            reply = _queues(reply_q)[reply_q]
            assert (reply["type"], reply["durable"], reply["auto_delete"]) == (
                "quorum", "true", "false")
            assert _queues(topic)[topic]["type"] == "classic"  # rabbit_quorum_queue is apart
        assert _queues(f"{topic}_fanout_") == {}, "a quorum fanout queue outlived its server"
    finally:
        transport.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.s1")
    assert _queues(reply_q) == {}, "the quorum reply queue outlived its transport"


SERVICE = textwrap.dedent("""
    import sys, dovecote
    transport = dovecote.get_transport(sys.argv[1], use_queue_manager=True,
                                       hostname="host-a", processname=sys.argv[3])
    class Api:
        def echo(self, ctxt, value):
            return value
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic=sys.argv[2], server="s1"),
                                     [Api()])
    server.start()
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic=sys.argv[2]), timeout=10)
    assert client.call({}, "echo", value=1) == 1
    print(transport.driver._reply.name)
    server.stop(); server.wait(10); transport.cleanup()
""")


@pytest.mark.broker
def test_use_queue_manager_reuses_the_same_queues_after_a_restart(
    rabbitmq: str, topic: str,
) -> None:
    process = f"svc-{topic}"
    names = []
    try:
        for _ in range(2):  # a service, then the same service restarted
            out = subprocess.run([sys.executable, "-c", SERVICE, BASE, topic, process],
                                 capture_output=True, text=True, check=True, timeout=60,
                                 start_new_session=True).stdout.split()
            names.append((out[-1], sorted(_queues(f"{topic}_fanout_"))))
        assert names[0] == names[1], "the restart declared other queues"
        reply_q, fanouts = names[0]
        assert reply_q.startswith(f"reply_host-a:{process}:")
        assert fanouts == [f"{topic}_fanout_host-a:{process}:1"]
        kept = _queues(reply_q)[reply_q]  # kept for the next run; expires when unused
        assert kept["auto_delete"] == "false"
        assert '{"x-expires",1800000}' in kept["arguments"]
    finally:
        delete_queues(rabbitmq, topic, f"{topic}.s1", f"{topic}_fanout_host-a:{process}:1",
                      *(n[0] for n in names))
        pathlib.Path(f"/dev/shm/host-a_{process}_qmanager").unlink(missing_ok=True)


# -- stream fanout -------------------------------------------------------------------
@pytest.fixture
def stream_transport(drop_vhost: str, topic: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(f"{BASE}{drop_vhost}?{FAST}&{STREAM}")
    yield transport
    transport.cleanup()
    delete_queues(transport, topic, f"{topic}.s1", f"{topic}.s2", f"{topic}_fanout",
                  vhost=drop_vhost)


@pytest.mark.broker
def test_stream_fanout_one_stream_each_listener_its_own_offset(
    stream_transport: dovecote.Transport, topic: str,
) -> None:
    """A cast sent before a listener started is not replayed to it; each
    listener then gets every fanout cast once; the stream keeps them (x-max-age)."""
    fan = dovecote.get_rpc_client(stream_transport, Target(topic=topic, fanout=True))
    first, second = Api(), Api()
    with serve(stream_transport, Target(topic=topic, server="s1"), [first]):
        fan.cast({}, "record", value="early")
        first.seen.wait_for(1)
        with serve(stream_transport, Target(topic=topic, server="s2"), [second]):
            for i in range(20):
                fan.cast({}, "record", value=i)
            # casts run on a pool of workers: they may finish in any order
            got = first.seen.wait_for(21)
            assert got[0] == "early"
            assert sorted(got[1:]) == list(range(20))
            got = second.seen.wait_for(20)
            assert "early" not in got
            assert sorted(got) == list(range(20))
        stream = _queues(f"{topic}_fanout", DROP_VHOST)
        assert list(stream) == [f"{topic}_fanout"]
        assert stream[f"{topic}_fanout"]["type"] == "stream"
        assert '{"x-max-age","1800s"}' in stream[f"{topic}_fanout"]["arguments"]
    assert _queues(f"{topic}_fanout", DROP_VHOST), "the shared stream was deleted"


@pytest.mark.broker
def test_stream_fanout_resumes_after_the_last_offset_seen_when_reconnected(
    stream_transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Casts sent while the listener was cut off are read after it reconnects
    (the stream kept them), and none it had read already is delivered again:
    counted where the listener takes deliveries, before any de-duplication."""
    import threading

    from dovecote.drivers.kombu._listener import KombuListener

    delivered: list[int] = []
    gate, cut = threading.Event(), threading.Event()
    on_message, reconnect = KombuListener._on_message, KombuListener._reconnect

    def counting(self: Any, queue_name: str, generation: int, raw: Any) -> None:
        if queue_name.endswith("_fanout"):
            delivered.append(raw.headers["x-stream-offset"])
        on_message(self, queue_name, generation, raw)

    def held(self: Any, timeout: float) -> bool:
        cut.set()
        gate.wait(10)  # the test publishes while the listener is away
        return bool(reconnect(self, timeout))

    monkeypatch.setattr(KombuListener, "_on_message", counting)
    monkeypatch.setattr(KombuListener, "_reconnect", held)
    api = Api()
    fan = dovecote.get_rpc_client(stream_transport, Target(topic=topic, fanout=True))
    with serve(stream_transport, Target(topic=topic, server="s1"), [api]):
        for i in range(10):
            fan.cast({}, "record", value=i)
        api.seen.wait_for(10)
        rabbitmqctl("close_all_connections", "--vhost", DROP_VHOST, "test")
        assert cut.wait(10), "the listener did not notice"
        for i in range(10, 30):
            fan.cast({}, "record", value=i)
        gate.set()
        assert sorted(api.seen.wait_for(30)) == list(range(30))  # workers: any order
    assert delivered == list(range(30)), "a gap or a repeat in the stream offsets read"


@pytest.mark.broker
def test_stream_fanout_a_batch_whose_ack_failed_is_read_again(
    stream_transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Casts taken from the stream whose acknowledgement failed (the connection
    went at that moment) are not handed over; the listener must read them again
    after it reconnects, not resume past them. (The failed write is injected:
    a broker cannot be made to drop a connection between a take and its ack.)"""
    import threading

    import amqp

    armed = threading.Event()
    basic_ack = amqp.Channel.basic_ack

    def failing_ack(self: Any, *args: Any, **kwargs: Any) -> Any:
        if armed.is_set():
            armed.clear()
            raise ConnectionResetError("injected: the connection went during the ack")
        return basic_ack(self, *args, **kwargs)

    monkeypatch.setattr(amqp.Channel, "basic_ack", failing_ack)
    api = Api()
    fan = dovecote.get_rpc_client(stream_transport, Target(topic=topic, fanout=True))
    with serve(stream_transport, Target(topic=topic, server="s1"), [api]):
        for i in range(5):
            fan.cast({}, "record", value=i)
        api.seen.wait_for(5)
        armed.set()
        fan.cast({}, "record", value=5)
        assert sorted(api.seen.wait_for(6)) == list(range(6))
        assert not armed.is_set(), "the failure was never injected"


@pytest.mark.broker
def test_stream_fanout_deleted_stream_is_declared_again_and_read_from_its_end(
    stream_transport: dovecote.Transport, topic: str,
) -> None:
    """The broker cancels consumers of a deleted stream; the listener declares
    it again and reads on (its old offsets meant nothing in the new stream)."""
    api = Api()
    fan = dovecote.get_rpc_client(stream_transport, Target(topic=topic, fanout=True))
    with serve(stream_transport, Target(topic=topic, server="s1"), [api]):
        for _ in range(40):  # the old stream's offsets run to 40
            fan.cast({}, "record", value="before")
        api.seen.wait_for(40)
        rabbitmqctl("delete_queue", "-p", DROP_VHOST, f"{topic}_fanout")
        deadline = time.monotonic() + 10
        while "after" not in api.seen.items and time.monotonic() < deadline:
            fan.cast({}, "record", value="after")  # lost until the stream is back
            wait_until(lambda: "after" in api.seen.items, timeout=0.5)
        assert "after" in api.seen.items


@pytest.mark.broker
def test_reconnect_splay_delays_the_listener_reconnection(
    drop_vhost: str, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``kombu_reconnect_splay``, a listener that lost its connection
    waits its random share before reconnecting (here the whole splay)."""
    import random

    from dovecote.drivers.kombu._listener import KombuListener

    monkeypatch.setattr(random, "uniform", lambda a, b: b)
    times: dict[str, float] = {}
    lost, consume = KombuListener._lost, KombuListener._consume

    def on_lost(self: Any, exc: BaseException) -> None:
        times.setdefault("lost", time.monotonic())
        lost(self, exc)

    def on_consume(self: Any, policy: Any) -> None:
        if "lost" in times:
            times.setdefault("again", time.monotonic())
        consume(self, policy)

    monkeypatch.setattr(KombuListener, "_lost", on_lost)
    monkeypatch.setattr(KombuListener, "_consume", on_consume)
    transport = dovecote.get_transport(f"{BASE}{drop_vhost}?{FAST}&kombu_reconnect_splay=1.5")
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Api()]):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
            rabbitmqctl("close_all_connections", "--vhost", DROP_VHOST, "test")
            assert client.call({}, "echo", value=1) == 1  # served again
            gap = times["again"] - times["lost"]
            assert gap >= 1.45, f"reconnected {gap:.2f} s after the loss, splay 1.5 s"
    finally:
        transport.cleanup()
        delete_queues(transport, topic, f"{topic}.s1", vhost=drop_vhost)


def test_stream_fanout_is_refused_where_there_is_no_stream() -> None:
    with pytest.raises(dovecote.InvalidTransportURL, match="needs RabbitMQ"):
        dovecote.get_transport(f"kombu+redis://127.0.0.1:6379/0?{STREAM}")
