"""The rabbit driver's shared confirming channel (issue 12), on the real broker:
threads sending at once share one publishing connection and each send returns
once its own message is confirmed; a returned (unroutable) message fails its
own sender and no other; a refused one (``basic.nack``) fails its sender and
the channel goes on; the broker closing the connection under concurrent sends
loses nothing (each send is published again until confirmed)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from _rpc_support import delete_queues, own_vhost
from conftest import DROP_VHOST, rabbitmqctl

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

THREADS = 16
EACH = 50
DROP_URL = (f"rabbit://guest:guest@127.0.0.1:5672/{DROP_VHOST}?rabbit_retry_interval=0.05"
            "&rabbit_retry_backoff=0.05&rabbit_interval_max=0.2&connect_timeout=2")


def in_threads(work: Callable[[int], None], threads: int = THREADS) -> list[BaseException]:
    """Run ``work(thread_number)`` in ``threads`` threads; the errors they raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return errors


def drain(listener: Any, expected: int, timeout: float = 30) -> list[int]:
    """The ``i`` argument of each request ``listener`` takes, until every one
    of ``range(expected)`` arrived (or ``timeout``), then what is still queued
    (repeats)."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(set(got)) < expected and time.monotonic() < deadline:
        got.extend(m.message["args"]["i"] for m in listener.poll(0.2, 500))
    got.extend(m.message["args"]["i"] for m in listener.poll(0.05, 5000))
    return got


def publish_connections(vhost: str) -> int:
    """This process's publishing connections on ``vhost``, as the broker lists them."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "vhost", "client_properties"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    mine = f"dovecote:{os.getpid()}:publish"
    return sum(1 for line in out.splitlines() if line.startswith(vhost + "\t") and mine in line)


@pytest.fixture
def lone_vhost(rabbitmq: str) -> Iterator[str]:
    """A vhost of this test's own: the only publishing connection this process
    has on it is the test's transport's (another test's transport in the same
    xdist worker may still hold one on ``/``)."""
    with own_vhost("dovecote_confirms") as vhost:
        yield vhost


def test_concurrent_casts_share_one_connection_and_each_is_confirmed(
        lone_vhost: str, topic: str) -> None:
    transport = dovecote.get_transport(f"rabbit://guest:guest@127.0.0.1:5672/{lone_vhost}")
    listener = transport.driver.listen(Target(topic=topic))
    client = dovecote.get_rpc_client(transport, Target(topic=topic))
    counts: list[int] = []
    try:
        def work(n: int) -> None:
            for k in range(EACH):
                client.cast({}, "tick", i=n * EACH + k)
                if n == 0 and k == EACH // 2:
                    counts.append(publish_connections(lone_vhost))

        assert in_threads(work) == []
        got = drain(listener, THREADS * EACH)
    finally:
        listener.cleanup()
        transport.cleanup()
    assert sorted(got) == list(range(THREADS * EACH))  # every one, once
    assert counts == [1]  # sixteen threads, one publishing connection


def test_a_returned_message_fails_its_own_sender_only(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    listener = rabbit_transport.driver.listen(Target(topic=topic))
    driver: Any = rabbit_transport.driver
    exchange = driver.entities.topic_exchange(driver.control_exchange)
    outcomes: dict[tuple[int, int], str] = {}
    try:
        def work(n: int) -> None:
            for k in range(EACH):
                routable = (n + k) % 2 == 0
                body = dovecote._wire.encode_envelope({"method": "m", "args": {"i": n * EACH + k}})
                key = topic if routable else f"{topic}.nobody"
                try:
                    driver.publish(exchange, key, body, mandatory=True, declare=[exchange])
                except dovecote.MessageUndeliverable as exc:
                    outcomes[n, k] = f"returned {exc.routing_key}"
                else:
                    outcomes[n, k] = "confirmed"

        assert in_threads(work) == []
        got = drain(listener, THREADS * EACH // 2)
    finally:
        listener.cleanup()
        delete_queues(rabbit_transport, topic)
    for (n, k), outcome in outcomes.items():
        expected = "confirmed" if (n + k) % 2 == 0 else f"returned {topic}.nobody"
        assert outcome == expected, (n, k)
    assert sorted(got) == sorted(n * EACH + k for (n, k) in outcomes if (n + k) % 2 == 0)


def test_connections_closed_under_concurrent_casts_lose_nothing(
        drop_vhost: str, topic: str) -> None:
    transport = dovecote.get_transport(DROP_URL)
    listener = transport.driver.listen(Target(topic=topic))
    client = dovecote.get_rpc_client(transport, Target(topic=topic))
    confirmed: list[int] = []  # each i once its cast returned
    lock = threading.Condition()
    stop = threading.Event()
    try:
        def work(n: int) -> None:
            k = 0
            while not stop.is_set():
                i = n * 1_000_000 + k
                client.cast({}, "tick", i=i)
                with lock:
                    confirmed.append(i)
                    lock.notify_all()
                k += 1

        def more_sent(count: int) -> None:
            with lock:
                target = len(confirmed) + count
                assert lock.wait_for(lambda: len(confirmed) >= target, 30)

        def drop_twice() -> None:
            try:
                for _ in range(2):
                    more_sent(100)
                    rabbitmqctl("close_all_connections", "--vhost", drop_vhost, "test")
                more_sent(100)  # sends go on after the second drop
            finally:
                stop.set()

        dropper = threading.Thread(target=drop_twice)
        with structlog.testing.capture_logs():  # the retries' warnings
            dropper.start()
            errors = in_threads(work, 8)
            dropper.join(60)
        got = drain_ids(listener, set(confirmed))
        # every connection on the vhost was closed twice: the publishing one is back
        publishing_after = publish_connections(drop_vhost)
    finally:
        listener.cleanup()
        delete_queues(transport, topic, vhost=drop_vhost)
        transport.cleanup()
    missing = set(confirmed) - set(got)
    print(f"sent {len(confirmed)}, received {len(got)}, missing {len(missing)}, "
          f"duplicated {len(got) - len(set(got))}")
    assert errors == []
    assert missing == set()  # at least once: a send returns only once confirmed
    assert publishing_after >= 1


def drain_ids(listener: Any, expected: set[int], timeout: float = 30) -> list[int]:
    """Requests' ``i`` until every one of ``expected`` arrived, then what is still queued."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while not expected <= set(got) and time.monotonic() < deadline:
        got.extend(m.message["args"]["i"] for m in listener.poll(0.2, 500))
    got.extend(m.message["args"]["i"] for m in listener.poll(0.05, 5000))
    return got


def test_a_message_the_broker_refuses_fails_its_sender(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    """``basic.nack``: a queue that rejects what exceeds its length."""
    import amqp

    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(topic, arguments={"x-max-length": 1,
                                                "x-overflow": "reject-publish"})
        driver: Any = rabbit_transport.driver
        driver.publish("", topic, "first")
        with pytest.raises(dovecote.MessageDeliveryFailure, match="refused"):
            driver.publish("", topic, "second")
        driver.publish("", f"{topic}.nobody", "unrouted, not refused")  # the channel goes on
        channel.queue_delete(topic)
    finally:
        conn.close()


def test_cleanup_ends_a_send_retrying_forever_against_no_broker() -> None:
    transport = dovecote.get_transport(
        "rabbit://guest:guest@127.0.0.1:1/?rabbit_retry_interval=0.05"
        "&rabbit_retry_backoff=0.05&rabbit_interval_max=0.1&connect_timeout=0.5")
    client = dovecote.get_rpc_client(transport, Target(topic="nowhere"), retry=-1)
    outcome: list[BaseException] = []

    def send() -> None:
        try:
            client.cast({}, "tick")
        except BaseException as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    with structlog.testing.capture_logs() as logs:
        sender.start()
        while not any(e["event"] == "connection.retrying" for e in logs):
            sender.join(0.01)  # until it is retrying
        started = time.monotonic()
        transport.cleanup()
        assert time.monotonic() - started < 2  # cleanup() does not wait for the sender
        sender.join(5)
    assert not sender.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], dovecote.MessageDeliveryFailure)
    assert "cleaned up" in str(outcome[0])
