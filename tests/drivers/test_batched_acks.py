"""Acknowledgements in batches on RabbitMQ (issue 12), checked at the broker:
notifications finished out of order are all acknowledged while a slow one
still runs (one ``multiple`` ack covers only what lies below every unsettled
delivery), the slow one is acknowledged when it returns, and nothing comes
back; a burst of requests taken together leaves nothing unacknowledged."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest
from _rpc_support import delete_queues, running, wait_until

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def counts(queue: str) -> tuple[int, int]:
    """``(ready, unacknowledged)`` messages of ``queue`` at the broker."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages_ready",
         "messages_unacknowledged"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    for line in out.splitlines():
        name, *numbers = line.split("\t")
        if name == queue:
            return int(numbers[0]), int(numbers[1])
    raise AssertionError(f"no queue {queue!r} at the broker")


class Endpoint:
    """Records each notification's ``i``; the one with ``i == 0`` waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        if payload["i"] == 0:
            self.release.wait(30)
        with self.lock:
            self.seen.append(payload["i"])


def test_notifications_finished_out_of_order_are_all_acknowledged(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    endpoint = Endpoint()
    listener = dovecote.get_notification_listener(
        rabbit_transport, [Target(topic=topic)], [endpoint], max_workers=4)
    queue = f"{topic}.info"
    notifier = dovecote.Notifier(rabbit_transport, driver="messagingv2", topics=[topic],
                                 publisher_id="test")
    try:
        with running(listener):
            for i in range(60):
                notifier.info({}, "test.event", {"i": i})
            assert wait_until(lambda: len(endpoint.seen) == 59)
            # 59 finished above and after the slow one: all acknowledged
            assert wait_until(lambda: counts(queue) == (0, 1))
            endpoint.release.set()
            assert wait_until(lambda: counts(queue) == (0, 0))
        assert sorted(endpoint.seen) == list(range(60))  # none came back
    finally:
        endpoint.release.set()
        delete_queues(rabbit_transport, queue)


class Sink:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: list[int] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def tick(self, ctxt: Any, i: int) -> None:
        with self.lock:
            self.seen.append(i)
            if len(self.seen) == self.expected:
                self.done.set()


def test_a_burst_of_requests_is_taken_once_and_leaves_nothing_unacknowledged(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    sink = Sink(500)
    server = dovecote.get_rpc_server(rabbit_transport, Target(topic=topic, server="s"), [sink])
    client = dovecote.get_rpc_client(rabbit_transport, Target(topic=topic))
    try:
        with running(server):
            for i in range(500):
                client.cast({}, "tick", i=i)
            assert sink.done.wait(30)
            assert wait_until(lambda: counts(topic) == (0, 0))
        assert sorted(sink.seen) == list(range(500))
    finally:
        delete_queues(rabbit_transport, topic, f"{topic}.s")
