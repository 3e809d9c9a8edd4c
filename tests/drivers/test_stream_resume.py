"""Stream fanout (``rabbit_stream_fanout``): a listener that loses its
connection before it took its first cast still reads the casts sent while it
was away (issue 20, item 5), and none twice."""

from __future__ import annotations

import datetime
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _rpc_support import Recorder, delete_queues, running
from conftest import DROP_VHOST

import dovecote
from dovecote import Target
from dovecote.drivers.kombu._entities import CLOCK_SLACK, STREAM_OFFSET, StreamOffsets
from dovecote.drivers.kombu._listener import KombuListener
from dovecote.drivers.kombu._options import Queue

BASE = "rabbit://guest:guest@127.0.0.1:5672/"
FAST = ("heartbeat_timeout_threshold=2&rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2"
        "&rabbit_interval_max=1&connect_timeout=2")
STREAM = "rabbit_transient_quorum_queue=true&rabbit_stream_fanout=true"


def _stream(name: str) -> Any:
    return Queue(name, queue_arguments={"x-queue-type": "stream"})


def test_a_listener_that_took_nothing_resumes_from_when_it_first_subscribed() -> None:
    """``next`` means "now" to the broker: it is pinned when first asked for, so
    a later subscription (a reconnection before the first delivery) starts
    where the first one did, not at the stream's end."""
    offsets = StreamOffsets([_stream("t_fanout"), Queue("t")])
    assert offsets.consumer_arguments("t") is None  # not a stream
    before = datetime.datetime.now(datetime.UTC)
    assert offsets.consumer_arguments("t_fanout") == {STREAM_OFFSET: "next"}
    again = offsets.consumer_arguments("t_fanout")
    assert again is not None
    pinned = again[STREAM_OFFSET]
    assert isinstance(pinned, datetime.datetime), f"resumed at {pinned!r}: casts meanwhile lost"
    slack = datetime.timedelta(seconds=CLOCK_SLACK + 1)
    assert before - slack <= pinned <= before
    assert offsets.consumer_arguments("t_fanout") == again  # the same until a delivery is taken
    offsets.seen("t_fanout", {STREAM_OFFSET: 41})
    assert offsets.consumer_arguments("t_fanout") == {STREAM_OFFSET: 42}
    offsets.reset()  # the stream was deleted: its offsets mean nothing any more
    assert offsets.consumer_arguments("t_fanout") == {STREAM_OFFSET: "last"}
    after_reset = offsets.consumer_arguments("t_fanout")
    assert after_reset is not None
    assert isinstance(after_reset[STREAM_OFFSET], datetime.datetime)


def _close_my_listeners(vhost: str) -> int:
    """``rabbitmqctl close_connection`` for this process's listener connections
    on ``vhost`` (named ``dovecote:<pid>:listen``): nobody else's."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "pid", "vhost",
         "client_properties"], capture_output=True, text=True, check=True, timeout=60).stdout
    mine = f'"dovecote:{os.getpid()}:listen"'
    pids = [line.split("\t", 1)[0] for line in listing.splitlines()
            if f"\t{vhost}\t" in line and mine in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test: stream resume"],
                       capture_output=True, check=True, timeout=60)
    return len(pids)


class Api:
    def __init__(self) -> None:
        self.seen = Recorder()

    def record(self, ctxt: Any, value: Any) -> None:
        self.seen.add(value)


@pytest.fixture
def stream_transport(drop_vhost: str, topic: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(f"{BASE}{drop_vhost}?{FAST}&{STREAM}")
    yield transport
    transport.cleanup()
    delete_queues(transport, topic, f"{topic}.s1", f"{topic}_fanout", vhost=drop_vhost)


@pytest.mark.broker
def test_casts_sent_while_a_fresh_listener_was_away_arrive_after_it_is_back(
    stream_transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listener's connection is closed by the broker before it took any
    cast; eight casts are sent while it is away (its reconnection held until
    then); all eight arrive once it is back, each once (a blocking executor
    handles them in delivery order: once the fence is handled, every earlier
    delivery was)."""
    gate, cut = threading.Event(), threading.Event()
    reconnect = KombuListener._reconnect

    def held(self: Any, *args: Any, **kwargs: Any) -> Any:
        cut.set()
        gate.wait(10)  # the test casts while the listener is away
        return reconnect(self, *args, **kwargs)

    monkeypatch.setattr(KombuListener, "_reconnect", held)
    api = Api()
    fan = dovecote.get_rpc_client(stream_transport, Target(topic=topic, fanout=True))
    server = dovecote.get_rpc_server(stream_transport, Target(topic=topic, server="s1"), [api],
                                     executor="blocking")
    with running(server):
        assert _close_my_listeners(DROP_VHOST) >= 1
        assert cut.wait(10), "the listener did not notice its connection was closed"
        for i in range(8):
            fan.cast({}, "record", value=i)
        gate.set()
        got = api.seen.wait_for(8)
        print(f"\ncasts sent while the listener was away: 8, arrived after it was back: "
              f"{sum(1 for v in got if isinstance(v, int))}")
        fan.cast({}, "record", value="fence")
        got = api.seen.wait_for(9)
    assert got[-1] == "fence"
    assert got[:-1] == list(range(8)), f"lost or repeated casts: {got}"
