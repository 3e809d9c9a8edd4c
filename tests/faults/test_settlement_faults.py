"""Every delivery ends settled (issue 20, item 3), on the real broker with real
faults: a requeue or dead letter the broker refuses is tried again after a
short back-off and then released (given back to the broker unchanged), so
the broker redelivers it and a listener never runs out of prefetch on
deliveries nobody settles; a declaration the broker refuses costs only the
sender that asked for it, never the publishing connection the others share.

The faults: a dead-letter queue declared by "someone else" with other
arguments (RabbitMQ refuses dovecote's declaration; over AMQP 1.0, which
accepts the queue as it is, it refuses every message), and a memory alarm on a
node of the test session's own (publishers blocked) while the endpoint fails.
Each test prints what it saw: notifications handled, release rounds, parked.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pytest
import structlog
from _rpc_support import PATIENCE, delete_queues
from conftest import AMQP1_URL, RABBIT_URL, OwnNode
from test_notifications import listening, notification_queues

import dovecote
from dovecote import Target
from dovecote.drivers.base import IncomingMessage, Listener
from dovecote.notify._settling import SETTLE_WAITS, settle_patiently

pytestmark = pytest.mark.timeout(120)

POISON, VALID = 5, 20
#: The dead-letter queue "someone else" declared: RabbitMQ refuses dovecote's
#: declaration of it (other arguments), and it takes no message.
REFUSING = {"x-max-length": 0, "x-overflow": "reject-publish"}


class Flaky:
    """An endpoint that raises for poison notifications and records the rest."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.failures: collections.Counter[int] = collections.Counter()
        self.handled: set[int] = set()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        with self.cond:
            if payload["poison"]:
                self.failures[payload["n"]] += 1
                self.cond.notify_all()
                raise ValueError(f"poison {payload['n']}")
            self.handled.add(payload["n"])
            self.cond.notify_all()

    def wait(self, predicate: Callable[[Flaky], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self), timeout)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in list(logs) if line["event"] == name]


def wait_logged(logs: list[dict[str, Any]], name: str, count: int, timeout: float) -> bool:
    """Until ``count`` lines of event ``name`` were logged; ``False`` on timeout."""
    deadline = time.monotonic() + timeout
    while len(events(logs, name)) < count:
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


@contextlib.contextmanager
def raw_channel(port: int = 5672) -> Iterator[Any]:
    """A raw AMQP 0-9-1 channel, to act as "someone else" on the broker."""
    conn = amqp.Connection(host=f"127.0.0.1:{port}", userid="guest", password="guest")
    conn.connect()
    try:
        yield conn.channel()
    finally:
        conn.close()


def poll_until(listener: Listener, count: int, within: float = PATIENCE) -> list[IncomingMessage]:
    out: list[IncomingMessage] = []
    deadline = time.monotonic() + within
    while len(out) < count and time.monotonic() < deadline:
        out.extend(listener.poll(0.2, count - len(out)))
    return out


# -- the contract, on every transport ---------------------------------------------------
def test_release_gives_a_notification_back_unchanged(
        transport: dovecote.Transport, topic: str) -> None:
    """``release()`` returns a delivery to its queue as it came (the same
    redelivery count), only once, and acknowledgements of the deliveries
    around it never take it along (no ``multiple`` ack covers it)."""
    driver = transport.driver
    listener = driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    try:
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
        for n in range(3):
            notifier.info({}, "settle.test", n)
        taken = {m.message["payload"]: m for m in poll_until(listener, 3)}
        assert sorted(taken) == [0, 1, 2]
        taken[0].release()
        taken[0].release()  # settled: a no-op
        taken[0].acknowledge()  # settled: a no-op
        taken[1].acknowledge()
        taken[2].acknowledge()
        again = poll_until(listener, 2, within=2)
        assert [m.message["payload"] for m in again] == [0]
        assert again[0].redeliveries == taken[0].redeliveries == 0
        again[0].acknowledge()
        assert poll_until(listener, 1, within=0.5) == []
    finally:
        listener.cleanup()
        delete_queues(transport, *notification_queues(topic))


@pytest.mark.broker
def test_one_flush_never_acks_a_released_delivery(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    """Settlements queued while the listener's thread holds the connection go
    out in one flush: the release of the first delivery, then the acks of the
    two after it, which one ``multiple`` ack would cover (the first included)
    if it were sent before the reject."""
    driver: Any = rabbit_transport.driver
    listener = driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    try:
        notifier = dovecote.Notifier(rabbit_transport, publisher_id="p", topics=[topic])
        for n in range(3):
            notifier.info({}, "settle.test", n)
        taken = sorted(poll_until(listener, 3), key=lambda m: m.message["payload"])
        holding, settled = threading.Event(), threading.Event()

        def hold_the_connection() -> None:
            with listener._lock:  # as poll() does while it drains
                holding.set()
                settled.wait(PATIENCE)

        holder = threading.Thread(target=hold_the_connection)
        holder.start()
        assert holding.wait(PATIENCE)
        taken[0].release()
        taken[1].acknowledge()
        taken[2].acknowledge()
        settled.set()
        holder.join(PATIENCE)
        again = poll_until(listener, 1, within=2)  # flushes the three, then takes
        assert [m.message["payload"] for m in again] == [0]
        again[0].acknowledge()
        assert poll_until(listener, 1, within=0.5) == []
    finally:
        listener.cleanup()
        delete_queues(rabbit_transport, *notification_queues(topic))


# -- a dead-letter queue that refuses ---------------------------------------------------
@pytest.mark.broker
@pytest.mark.parametrize("kind", ["rabbit", "amqp1"])
def test_a_refused_dead_letter_never_stalls_the_listener(
        rabbitmq: str, unique: str, kind: str) -> None:
    """The issue's reproduction: five poison notifications (more than fill the
    prefetch) whose dead letter the broker refuses, then twenty valid ones.
    The poison ones are released and delivered again, round after round (each
    round at least the settle back-off), and once the bad queue is gone all
    twenty are handled and the poison ones parked."""
    topic = f"settle_{unique}"
    url = (f"{RABBIT_URL}?prefetch_count={POISON}" if kind == "rabbit"
           else f"{AMQP1_URL}?prefetch={POISON}&reconnect_delay=0.05&reconnect_max_delay=0.2")
    transport = dovecote.get_transport(url)
    endpoint = Flaky()
    dead = f"{topic}.info.dead"
    # Over AMQP 0-9-1 dovecote's declaration of it is refused (other arguments);
    # the AMQP 1.0 driver accepts a queue as it is, so there "someone else" holds
    # it exclusively (RESOURCE_LOCKED). RabbitMQ 3.x's AMQP 1.0 plugin drops the
    # whole connection when a queue refuses a message, so REFUSING would not do.
    someone_else = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    someone_else.connect()
    someone_else.channel().queue_declare(
        dead, durable=kind == "rabbit", auto_delete=False, exclusive=kind == "amqp1",
        arguments=REFUSING if kind == "rabbit" else None)
    try:
        with structlog.testing.capture_logs() as logs, listening(
                transport, [Target(topic=topic)], [endpoint], allow_requeue=True,
                max_redeliveries=1):
            notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
            for n in range(POISON):
                notifier.info({}, "settle.poison", {"n": n, "poison": True})
            # every poison notification was requeued once and reached its dead letter
            reached = endpoint.wait(lambda e: len([n for n, c in e.failures.items() if c >= 2])
                                    == POISON, 20)
            for n in range(VALID):
                notifier.info({}, "settle.valid", {"n": 100 + n, "poison": False})
            fault_started = time.monotonic()
            # each refused one comes round again (on the old code none did)
            came_back = endpoint.wait(lambda e: min(e.failures.values()) >= 3, 15)
            someone_else.channel().queue_delete(dead)
            someone_else.close()
            fault = time.monotonic() - fault_started
            endpoint.wait(lambda e: len(e.handled) == VALID, 20)
            parked = wait_logged(logs, "notification.dead_lettered", POISON, 20)
            handled = len(endpoint.handled)
        released = events(logs, "notification.released")
        rounds = collections.Counter(line["redeliveries"] for line in released)
        print(f"\n{kind}: {handled} of {VALID} valid notifications handled after the bad "
              f"queue was deleted; {len(released)} release rounds of {POISON} poison ones "
              f"in {fault:.1f}s of fault ({dict(endpoint.failures)} endpoint runs each), "
              f"{len(events(logs, 'notification.dead_lettered'))} parked")
        assert handled == VALID, f"{handled} of {VALID} handled: the listener stalled"
        assert reached, endpoint.failures
        assert came_back, "a released notification was never delivered again"
        assert parked
        assert released
        assert set(rounds) == {1}  # released as they came: count unchanged
        # no hot loop: a round takes at least the back-off
        most = max(endpoint.failures.values())
        assert most <= 3 + (fault + 5) / sum(SETTLE_WAITS), endpoint.failures
        parked_reasons = [dead_letter.reason for dead_letter in
                          dovecote.take_dead_letters(transport, topic, "info", limit=2 * POISON)]
        assert len(parked_reasons) == POISON
        assert all("ValueError('poison" in str(reason) for reason in parked_reasons)
    finally:
        someone_else.close()
        delete_queues(transport, *notification_queues(topic))
        transport.cleanup()


# -- a memory alarm while the endpoint fails --------------------------------------------
@pytest.mark.broker
def test_a_memory_alarm_while_the_endpoint_fails_never_stalls_the_listener(
        node_back: OwnNode, unique: str) -> None:
    """Poison notifications ahead of twenty valid ones, a memory alarm on the
    node (every publisher blocked, so no requeue is confirmed): the poison
    ones are released and delivered again while the alarm lasts, and once it
    is over the twenty valid ones are handled and the poison ones parked. A
    requeue whose confirm timed out may still reach the queue once the alarm is
    over: then a poison one is parked twice (at least once, never lost)."""
    topic = f"alarm_{unique}"
    transport = dovecote.get_transport(
        f"{node_back.url}?prefetch_count={POISON}&confirm_timeout=1&max_retries=0"
        "&rabbit_retry_interval=0.1")
    endpoint = Flaky()
    notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
    for n in range(POISON):
        notifier.info({}, "alarm.poison", {"n": n, "poison": True})
    for n in range(VALID):
        notifier.info({}, "alarm.valid", {"n": 100 + n, "poison": False})
    try:
        node_back.ctl("set_vm_memory_high_watermark", "0")
        with structlog.testing.capture_logs() as logs, listening(
                transport, [Target(topic=topic)], [endpoint], allow_requeue=True,
                max_redeliveries=1):
            # each poison one failed, could not be requeued, was released, came back
            came_back = endpoint.wait(
                lambda e: len(e.failures) == POISON and min(e.failures.values()) >= 2, 30)
            during = len(endpoint.handled)
            node_back.ctl("set_vm_memory_high_watermark", "0.4")
            endpoint.wait(lambda e: len(e.handled) == VALID, 30)
            parked = wait_logged(logs, "notification.dead_lettered", POISON, 30)
            handled = len(endpoint.handled)
        released = events(logs, "notification.released")
        print(f"\nmemory alarm: {len(released)} release rounds, poison runs "
              f"{dict(endpoint.failures)}; {during} valid handled during the alarm, "
              f"{handled} of {VALID} after it; "
              f"{len(events(logs, 'notification.dead_lettered'))} parked")
        assert handled == VALID, f"{handled} of {VALID} handled: the listener stalled"
        assert came_back, "a released notification was never delivered again"
        assert len(released) >= POISON
        assert parked
    finally:
        transport.cleanup()


# -- a refused declaration costs its sender only ----------------------------------------
@pytest.mark.broker
def test_a_refused_declaration_fails_its_sender_only(
        rabbit_transport: dovecote.Transport, topic: str) -> None:
    """Eight threads cast (``retry=0``: a lost connection would fail them)
    while another declares, again and again, a queue that exists with other
    arguments: it gets PRECONDITION_FAILED each time, and nobody else notices."""
    driver: Any = rabbit_transport.driver
    clash = f"{topic}.clash"
    with raw_channel() as channel:
        channel.queue_declare(clash, durable=True, auto_delete=False, arguments=REFUSING)
    listener = driver.listen(Target(topic=topic))
    client = dovecote.get_rpc_client(rabbit_transport, Target(topic=topic), retry=0)
    stop = threading.Event()
    sent: list[int] = []
    errors: list[BaseException] = []
    refused: list[str] = []

    def cast(n: int) -> None:
        k = 0
        while not stop.is_set():
            try:
                client.cast({}, "tick", i=n * 1_000_000 + k)
            except BaseException as exc:
                errors.append(exc)
                return
            sent.append(n * 1_000_000 + k)
            k += 1

    def declare() -> None:
        queue = driver.entities.topic_queue(clash, [])
        try:
            for _ in range(20):
                before = len(sent)
                with pytest.raises(dovecote.MessageDeliveryFailure) as info:
                    driver.publish("", clash, "x", declare=[queue], retry=0)
                refused.append(str(info.value))
                deadline = time.monotonic() + 10
                while len(sent) < before + 20 and time.monotonic() < deadline and not errors:
                    threading.Event().wait(0.001)  # some casts in between
        finally:
            stop.set()

    try:
        with structlog.testing.capture_logs() as logs:
            threads = [threading.Thread(target=cast, args=(n,)) for n in range(8)]
            threads.append(threading.Thread(target=declare))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        got: list[int] = []
        deadline = time.monotonic() + 30
        while len(set(got)) < len(sent) and time.monotonic() < deadline:
            got.extend(m.message["args"]["i"] for m in listener.poll(0.2, 500))
    finally:
        stop.set()
        listener.cleanup()
        delete_queues(rabbit_transport, topic, clash)
    retried = events(logs, "connection.retrying")
    print(f"\n{len(refused)} refused declarations among {len(sent)} casts of 8 threads: "
          f"{len(errors)} casts failed, {len(retried)} reconnections, "
          f"{len(set(sent) - set(got))} lost")
    assert errors == []
    assert len(refused) == 20
    assert all("PRECONDITION_FAILED" in text and "other arguments" in text for text in refused)
    assert retried == []  # the shared publishing connection was never lost
    assert set(got) == set(sent)


# -- the back-off itself ----------------------------------------------------------------
def test_the_settle_back_off_is_bounded_and_ends_when_the_server_stops() -> None:
    def refuse() -> None:
        raise RuntimeError("refused")

    waits: list[float | None] = []
    started = time.monotonic()
    assert not settle_patiently(refuse, failed=lambda _n, wait, _exc: waits.append(wait))
    took = time.monotonic() - started
    assert waits == [*SETTLE_WAITS, None]
    assert sum(SETTLE_WAITS) <= took < sum(SETTLE_WAITS) + 1

    stopping = threading.Event()
    tries: list[int] = []

    def stop_at_first(attempt: int, _wait: float | None, _exc: Exception) -> None:
        tries.append(attempt)
        stopping.set()  # the server stops while the first wait runs

    started = time.monotonic()
    assert not settle_patiently(refuse, failed=stop_at_first, stopping=stopping)
    assert tries == [1]
    assert time.monotonic() - started < SETTLE_WAITS[0]

    outcomes = iter([RuntimeError("once"), None])

    def flaky() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    assert settle_patiently(flaky, failed=lambda *_: None)  # the second try worked
