"""The notification behaviour suite: every test runs on every transport of
``conftest.TRANSPORTS`` (memory, rabbit, amqp1) through the ``transport``
fixture, with real listeners built of real actors and, for broker transports,
the real RabbitMQ. Nothing is mocked; tests wait on events, never on sleeps.

The helpers at the top (raw access to each transport's broker, a recording
endpoint, a running listener) are shared with the interop and fault tests.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import _rpc_support
import pykka
import pytest
import structlog.testing
from _redis_support import RedisInjector
from _rpc_support import (
    BROKER_HOST,
    PATIENCE,
    delete_queues,
    envelope,
    inject,
    kind_of,
    memory_name,
    queue_depth,
)

import dovecote
from dovecote import NotificationFilter, NotificationResult, Target
from dovecote.drivers.memory import get_broker

pytestmark = pytest.mark.timeout(60)

#: Every priority method, as the notifier names them and as they arrive.
NOTIFIER_METHODS = {
    "audit": "AUDIT", "debug": "DEBUG", "info": "INFO", "warn": "WARN", "warning": "WARN",
    "error": "ERROR", "critical": "CRITICAL", "sample": "SAMPLE",
}
LISTENER_PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


# -- raw access to each transport's broker (the rest is in _rpc_support) -----------------
def memory_broker(transport: dovecote.Transport) -> Any:
    return get_broker(memory_name(transport))


@contextlib.contextmanager
def amqp_channel() -> Iterator[Any]:
    """A raw AMQP 0-9-1 channel on the test broker (rabbit and amqp1 share it)."""
    import amqp

    conn = amqp.Connection(host=BROKER_HOST, userid="guest", password="guest")
    conn.connect()
    try:
        yield conn.channel()
    finally:
        conn.close()


def take_raw(transport: dovecote.Transport, queue: str) -> list[str]:
    """Remove every body waiting in ``queue`` and return them as text."""
    if kind_of(transport) == "memory":
        bodies = [m.body for m in memory_broker(transport).drain(queue)]
    elif kind_of(transport) == "redis":
        injector = RedisInjector()
        bodies = list(injector.take(queue))
        injector.close()
    else:
        bodies = []
        with amqp_channel() as channel:
            while (msg := channel.basic_get(queue, no_ack=True)) is not None:
                bodies.append(msg.body)
    return [b.decode() if isinstance(b, bytes) else b for b in bodies]


def notification_queues(*topics: str) -> list[str]:
    """Every queue a listener or notifier may have made for ``topics``."""
    return [f"{t}.{p}{dead}" for t in topics for p in LISTENER_PRIORITIES
            for dead in ("", ".dead")]


# -- endpoints and listeners -------------------------------------------------------------
class Recorder(_rpc_support.Recorder):
    """What endpoints saw, thread-safe, with waits for a count or a condition."""

    def wait_until(self, predicate: Callable[[list[Any]], bool], timeout: float) -> bool:
        """Wait until ``predicate(items)`` holds; ``False`` if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.items), timeout)

    def __len__(self) -> int:
        with self._cond:
            return len(self.items)


class Seen:
    """One notification as an endpoint got it."""

    def __init__(self, priority: str, ctxt: Any, publisher_id: Any, event_type: Any,
                 payload: Any, metadata: Any) -> None:
        self.priority = priority
        self.ctxt = ctxt
        self.publisher_id = publisher_id
        self.event_type = event_type
        self.payload = payload
        self.metadata = metadata
        self.thread = threading.current_thread()

    def __repr__(self) -> str:
        return f"<Seen {self.priority} {self.event_type} {self.payload!r}>"


class Endpoint:
    """Records every priority."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder if recorder is not None else Recorder()

    def _record(self, priority: str, *args: Any) -> None:
        self.recorder.add(Seen(priority, *args))

    def audit(self, *args: Any) -> None:
        self._record("audit", *args)

    def debug(self, *args: Any) -> None:
        self._record("debug", *args)

    def info(self, *args: Any) -> None:
        self._record("info", *args)

    def warn(self, *args: Any) -> None:
        self._record("warn", *args)

    def error(self, *args: Any) -> None:
        self._record("error", *args)

    def critical(self, *args: Any) -> None:
        self._record("critical", *args)

    def sample(self, *args: Any) -> None:
        self._record("sample", *args)


class InfoEndpoint:
    """Records ``info`` only."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder if recorder is not None else Recorder()

    def info(self, *args: Any) -> None:
        self.recorder.add(Seen("info", *args))


@contextlib.contextmanager
def listening(
    transport: dovecote.Transport, targets: list[Target], endpoints: list[Any], *,
    batch: bool = False, **kwargs: Any,
) -> Iterator[Any]:
    """A started ``"threading"`` notification listener, stopped and waited for after."""
    factory = (dovecote.get_batch_notification_listener if batch
               else dovecote.get_notification_listener)
    listener = factory(transport, targets, endpoints, **kwargs)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()
        assert listener.wait(PATIENCE), "the listener did not stop in time"


def notifier_for(transport: dovecote.Transport, *topics: str, **kwargs: Any) -> dovecote.Notifier:
    kwargs.setdefault("publisher_id", "compute.host-1")
    return dovecote.Notifier(transport, topics=list(topics), **kwargs)


def payloads(seen: list[Seen]) -> list[Any]:
    return sorted(s.payload for s in seen)


@pytest.fixture
def topic2(unique: str) -> str:
    return f"test2_{unique}"


@pytest.fixture(autouse=True)
def _forget_queues(transport: dovecote.Transport, topic: str, topic2: str,
                   unique: str) -> Iterator[None]:
    """Notification queues outlive a test on RabbitMQ: delete this test's."""
    yield
    delete_queues(transport, *notification_queues(topic, topic2),
                  *(f"pool{i}_{unique}" for i in range(3)))


@pytest.fixture(autouse=True)
def _fresh_test_driver() -> Iterator[None]:
    dovecote.reset_test_notifications()
    yield
    dovecote.reset_test_notifications()


# -- priorities and the message ----------------------------------------------------------
def test_every_priority_reaches_its_method(transport: dovecote.Transport, topic: str) -> None:
    endpoint = Endpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]):
        notifier = notifier_for(transport, topic)
        for n, method in enumerate(NOTIFIER_METHODS):
            getattr(notifier, method)({}, f"event.{method}", n)
        seen = endpoint.recorder.wait_for(len(NOTIFIER_METHODS))
    got = sorted((s.payload, s.priority, s.event_type) for s in seen)
    assert got == [(n, NOTIFIER_METHODS[m].lower(), f"event.{m}")
                   for n, m in enumerate(NOTIFIER_METHODS)]


def test_warning_method_on_the_endpoint_takes_warn(
    transport: dovecote.Transport, topic: str
) -> None:
    recorder = Recorder()

    class Warner:
        def warning(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                    metadata: Any) -> None:
            recorder.add(Seen("warning", ctxt, publisher_id, event_type, payload, metadata))

    with listening(transport, [Target(topic=topic)], [Warner()]):
        notifier = notifier_for(transport, topic)
        notifier.warn({}, "e.warn", 1)
        notifier.warning({}, "e.warning", 2)
        seen = recorder.wait_for(2)
    assert payloads(seen) == [1, 2]
    assert {s.event_type for s in seen} == {"e.warn", "e.warning"}


def test_message_body_on_the_wire(transport: dovecote.Transport, topic: str) -> None:
    """What the notifier sends: oslo.messaging's notification body, enveloped."""
    listener = transport.driver.listen_for_notifications([(Target(topic=topic), "warn")], None)
    listener.cleanup()  # the queue exists now; read it raw
    before = time.time()
    notifier_for(transport, topic).warning({"user": "u1"}, "compute.update", {"id": "i-1"})
    [body] = take_raw(transport, f"{topic}.warn")
    outer = json.loads(body)
    assert outer["oslo.version"] == "2.0"
    outer = json.loads(outer["oslo.message"])
    assert outer["publisher_id"] == "compute.host-1"
    assert outer["event_type"] == "compute.update"
    assert outer["priority"] == "WARN"
    assert outer["payload"] == {"id": "i-1"}
    assert outer["_context_user"] == "u1"
    assert str(uuid.UUID(outer["message_id"])) == outer["message_id"]
    assert TIMESTAMP.match(outer["timestamp"]), outer["timestamp"]
    sent = time.mktime(time.strptime(outer["timestamp"][:19], "%Y-%m-%d %H:%M:%S"))
    assert abs(sent - time.mktime(time.gmtime(before))) < 60, "the timestamp is not UTC"


def test_endpoint_gets_context_publisher_event_payload_and_metadata(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = InfoEndpoint()
    ctxt = {"user": "alice", "project_id": "p1", "roles": ["admin"], "n": 3}
    payload = {"id": "i-1", "nested": {"list": [1, 2.5, None, "x"]}, "ok": True}
    with listening(transport, [Target(topic=topic)], [endpoint]):
        notifier_for(transport, topic).info(ctxt, "compute.instance.create.end", payload)
        [seen] = endpoint.recorder.wait_for(1)
    assert seen.ctxt == ctxt
    assert seen.publisher_id == "compute.host-1"
    assert seen.event_type == "compute.instance.create.end"
    assert seen.payload == payload
    assert set(seen.metadata) == {"message_id", "timestamp"}
    assert str(uuid.UUID(seen.metadata["message_id"])) == seen.metadata["message_id"]
    assert TIMESTAMP.match(seen.metadata["timestamp"])


def test_prepare_replaces_publisher_id_and_keeps_the_rest(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = InfoEndpoint()
    notifier = notifier_for(transport, topic, retry=2)
    prepared = notifier.prepare(publisher_id="network.host-2")
    assert prepared.publisher_id == "network.host-2"
    assert prepared.retry == 2
    assert prepared.topics == [topic]
    assert notifier.publisher_id == "compute.host-1"
    assert notifier.prepare(retry=5).retry == 5
    assert notifier.prepare(retry=5).publisher_id == "compute.host-1"
    with listening(transport, [Target(topic=topic)], [endpoint]):
        prepared.info({}, "e", 1)
        notifier.info({}, "e", 2)
        seen = endpoint.recorder.wait_for(2)
    assert sorted((s.payload, s.publisher_id) for s in seen) == [
        (1, "network.host-2"), (2, "compute.host-1")]


def test_is_enabled(transport: dovecote.Transport, topic: str) -> None:
    assert notifier_for(transport, topic).is_enabled()
    assert not notifier_for(transport, topic, driver="noop").is_enabled()
    assert notifier_for(transport, topic, driver=["noop", "log"]).is_enabled()
    assert notifier_for(transport, topic, driver="test").is_enabled()
    with pytest.raises(ValueError, match="routing"):
        notifier_for(transport, topic, driver="routing")


# -- notifier drivers --------------------------------------------------------------------
@pytest.mark.parametrize(("driver", "enveloped"), [("messaging", False), ("messagingv2", True)])
def test_messaging_drivers_bare_and_enveloped(
    transport: dovecote.Transport, topic: str, driver: str, enveloped: bool
) -> None:
    listener = transport.driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    listener.cleanup()
    notifier = notifier_for(transport, topic, driver=driver)
    notifier.info({"user": "u"}, "e.raw", {"n": 1})
    [body] = take_raw(transport, f"{topic}.info")
    assert ("oslo.version" in json.loads(body)) is enveloped
    endpoint = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]):
        notifier.info({"user": "u"}, "e.listened", {"n": 2})
        [seen] = endpoint.recorder.wait_for(1)
    assert (seen.ctxt, seen.event_type, seen.payload) == ({"user": "u"}, "e.listened", {"n": 2})


def test_log_driver_logs_each_notification(transport: dovecote.Transport, topic: str) -> None:
    notifier = notifier_for(transport, topic, driver="log")
    with structlog.testing.capture_logs() as logs:
        notifier.info({}, "e.info", {"a": 1})
        notifier.error({}, "e.error", {"b": 2})
        notifier.debug({}, "e.debug", None)
    lines = [line for line in logs if line["event"] == "notification"]
    assert [(line["log_level"], line["event_type"], line["priority"], line["payload"])
            for line in lines] == [
        ("info", "e.info", "INFO", {"a": 1}), ("error", "e.error", "ERROR", {"b": 2}),
        ("debug", "e.debug", "DEBUG", None)]
    assert all(line["publisher_id"] == "compute.host-1" for line in lines)
    assert all(line["message_id"] for line in lines)


def test_noop_driver_sends_nothing(transport: dovecote.Transport, topic: str) -> None:
    listener = transport.driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    listener.cleanup()
    with structlog.testing.capture_logs() as logs:
        notifier_for(transport, topic, driver="noop").info({}, "e", 1)
    assert queue_depth(transport, f"{topic}.info") == 0
    assert dovecote.get_test_notifications() == []
    assert not [line for line in logs if line["event"] == "notification"]


def test_test_driver_keeps_notifications_in_memory(
    transport: dovecote.Transport, topic: str
) -> None:
    notifier = notifier_for(transport, topic, driver="test", retry=1)
    notifier.info({"user": "u"}, "e.one", {"n": 1})
    notifier.prepare(publisher_id="other").sample({}, "e.two", 2)
    kept = dovecote.get_test_notifications()
    assert [(k["priority"], k["message"]["event_type"], k["message"]["payload"],
             k["message"]["publisher_id"], k["ctxt"], k["retry"], k["topics"]) for k in kept] == [
        ("INFO", "e.one", {"n": 1}, "compute.host-1", {"user": "u"}, 1, [topic]),
        ("SAMPLE", "e.two", 2, "other", {}, 1, [topic])]
    assert kept[0]["message"]["priority"] == "INFO"
    dovecote.reset_test_notifications()
    assert dovecote.get_test_notifications() == []


def test_several_drivers_at_once(transport: dovecote.Transport, topic: str) -> None:
    endpoint = InfoEndpoint()
    notifier = notifier_for(transport, topic, driver=["messagingv2", "test", "log"])
    with listening(transport, [Target(topic=topic)], [endpoint]), \
            structlog.testing.capture_logs() as logs:
        notifier.info({}, "e.all", {"n": 1})
        [seen] = endpoint.recorder.wait_for(1)
    [kept] = dovecote.get_test_notifications()
    [logged] = [line for line in logs if line["event"] == "notification"]
    assert seen.metadata["message_id"] == kept["message"]["message_id"] == logged["message_id"]


# -- filters -------------------------------------------------------------------------------
FILTERS: dict[str, NotificationFilter] = {
    "context": NotificationFilter(context={"user": "^adm"}),
    "publisher": NotificationFilter(publisher_id=r"^compute\."),
    "event": NotificationFilter(event_type=r"^instance\.create"),
    "metadata": NotificationFilter(metadata={"timestamp": r"^\d{4}-"}),
    "metadata_never": NotificationFilter(metadata={"timestamp": "^1999-"}),
    "payload": NotificationFilter(payload={"state": "^active$"}),
    "nested": NotificationFilter(payload={"vm": {"state": "^error$", "host": "^h1$"}}),
    "combined": NotificationFilter(publisher_id="^compute", event_type=r"^instance\.delete"),
}


def test_filters_on_every_field(transport: dovecote.Transport, topic: str) -> None:
    recorders = {name: Recorder() for name in FILTERS}
    endpoints: list[Any] = []
    for name, rule in FILTERS.items():
        cls = type(f"Filtered_{name}", (InfoEndpoint,), {"filter_rule": rule})
        endpoints.append(cls(recorders[name]))
    everything = InfoEndpoint()
    endpoints.append(everything)  # last: once it saw a message, every filter was asked
    sent = [  # (ctxt, publisher, event, payload)
        ({"user": "admin"}, "network.h", "x.y", {"n": 0}),
        ({"user": "bob"}, "compute.h1", "x.y", {"n": 1}),
        ({}, "net", "instance.create.end", {"n": 2}),
        ({}, "net", "x", {"n": 3, "state": "active"}),
        ({}, "net", "x", {"n": 4, "state": "inactive"}),
        ({}, "net", "x", {"n": 5, "vm": {"state": "error", "host": "h1"}}),
        ({}, "net", "x", {"n": 6, "vm": {"state": "error", "host": "h2"}}),
        ({}, "net", "x", {"n": 7, "vm": "error"}),
        ({"user": "administrator"}, "compute.h", "instance.delete", {"n": 8}),
    ]
    with listening(transport, [Target(topic=topic)], endpoints):
        notifier = notifier_for(transport, topic)
        for ctxt, publisher, event, payload in sent:
            notifier.prepare(publisher_id=publisher).info(ctxt, event, payload)
        everything.recorder.wait_for(len(sent))
    got = {name: sorted(s.payload["n"] for s in recorder.items)
           for name, recorder in recorders.items()}
    assert got == {
        "context": [0, 8], "publisher": [1, 8], "event": [2], "metadata": list(range(9)),
        "metadata_never": [], "payload": [3], "nested": [5], "combined": [8],
    }


def test_notifications_sent_before_any_listener_wait_for_it(
    transport: dovecote.Transport, topic: str
) -> None:
    """As with oslo.messaging, the notifier declares ``<topic>.<priority>``: what
    it sends before a listener exists is kept, not dropped."""
    notifier_for(transport, topic).info({}, "early", 1)
    endpoint = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]):
        [seen] = endpoint.recorder.wait_for(1)
    assert (seen.event_type, seen.payload) == ("early", 1)


# -- targets, topics, listen() after start() -----------------------------------------------
def test_several_targets_and_topics(transport: dovecote.Transport, topic: str,
                                    topic2: str) -> None:
    endpoint = InfoEndpoint()
    with listening(transport, [Target(topic=topic), Target(topic=topic2)], [endpoint]):
        notifier_for(transport, topic, topic2).info({}, "both", 1)
        notifier_for(transport, topic).info({}, "first", 2)
        notifier_for(transport, topic2).info({}, "second", 3)
        seen = endpoint.recorder.wait_for(4)
    assert sorted((s.event_type, s.payload) for s in seen) == [
        ("both", 1), ("both", 1), ("first", 2), ("second", 3)]


def test_listen_after_start_adds_a_target(transport: dovecote.Transport, topic: str,
                                          topic2: str) -> None:
    endpoint = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]) as listener:
        notifier_for(transport, topic).info({}, "before", 1)
        endpoint.recorder.wait_for(1)
        listener.listen(transport, Target(topic=topic2))
        notifier_for(transport, topic2).info({}, "added", 2)
        seen = endpoint.recorder.wait_for(2)
    assert sorted((s.event_type, s.payload) for s in seen) == [("added", 2), ("before", 1)]


# -- pools -----------------------------------------------------------------------------
def test_each_pool_gets_every_notification_once(transport: dovecote.Transport, topic: str,
                                                unique: str) -> None:
    first, second = InfoEndpoint(), InfoEndpoint()
    count = 10
    with listening(transport, [Target(topic=topic)], [first], pool=f"pool0_{unique}"), \
            listening(transport, [Target(topic=topic)], [second], pool=f"pool1_{unique}"):
        notifier = notifier_for(transport, topic)
        for n in range(count):
            notifier.info({}, "e", n)
        first.recorder.wait_for(count)
        second.recorder.wait_for(count)
    # both stopped and drained: nothing more came
    assert payloads(first.recorder.items) == list(range(count))
    assert payloads(second.recorder.items) == list(range(count))


class SharingEndpoint(InfoEndpoint):
    """One member of a group of competing listeners: its first notification waits
    (briefly) until every member has had one, so none can take them all."""

    def __init__(self, everyone_has_one: threading.Event, members: list[SharingEndpoint],
                 total: Recorder) -> None:
        super().__init__()
        self.everyone_has_one = everyone_has_one
        self.members = members
        self.total = total

    def info(self, *args: Any) -> None:
        super().info(*args)
        if all(len(m.recorder) for m in self.members):
            self.everyone_has_one.set()
        self.everyone_has_one.wait(PATIENCE)
        self.total.add(args[3])


@pytest.mark.parametrize("pooled", [True, False], ids=["one-pool", "no-pool"])
def test_members_of_one_pool_share_notifications(
    transport: dovecote.Transport, topic: str, unique: str, pooled: bool
) -> None:
    """Two members of one pool (or two listeners without a pool on one topic)
    compete: each gets some, together exactly every notification."""
    everyone_has_one, total = threading.Event(), Recorder()
    members: list[SharingEndpoint] = []
    members.extend(SharingEndpoint(everyone_has_one, members, total) for _ in range(2))
    pool = f"pool0_{unique}" if pooled else None
    count = 20
    with listening(transport, [Target(topic=topic)], [members[0]], pool=pool,
                   max_in_flight=1), \
            listening(transport, [Target(topic=topic)], [members[1]], pool=pool,
                      max_in_flight=1):
        notifier = notifier_for(transport, topic)
        for n in range(count):
            notifier.info({}, "e", n)
        assert everyone_has_one.wait(PATIENCE), "one member took every notification"
        total.wait_for(count)
    # both stopped and drained: nothing more came
    assert all(len(m.recorder) > 0 for m in members)
    assert sorted(total.items) == list(range(count))
    assert sorted(payloads(members[0].recorder.items) + payloads(members[1].recorder.items)) \
        == list(range(count))


# -- batches -------------------------------------------------------------------------------
class BatchEndpoint:
    """Records each batch it is handed."""

    def __init__(self) -> None:
        self.batches = Recorder()

    def info(self, messages: list[dict[str, Any]]) -> None:
        self.batches.add(list(messages))


def test_batch_size_reached_hands_over_one_batch(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = BatchEndpoint()
    with listening(transport, [Target(topic=topic)], [endpoint], batch=True, batch_size=5,
                   batch_timeout=30.0):
        notifier = notifier_for(transport, topic)
        for n in range(10):
            notifier.info({"user": "u"}, "e.batch", n)
        batches = endpoint.batches.wait_for(2)  # long before batch_timeout
    assert [len(b) for b in batches] == [5, 5]
    entries = [e for b in batches for e in b]
    assert sorted(e["payload"] for e in entries) == list(range(10))
    entry = entries[0]
    assert set(entry) == {"ctxt", "publisher_id", "event_type", "payload", "metadata"}
    assert (entry["ctxt"], entry["publisher_id"], entry["event_type"]) == (
        {"user": "u"}, "compute.host-1", "e.batch")
    assert set(entry["metadata"]) == {"message_id", "timestamp"}


def test_batch_timeout_flushes_a_partial_batch(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = BatchEndpoint()
    timeout = 0.5
    with listening(transport, [Target(topic=topic)], [endpoint], batch=True, batch_size=100,
                   batch_timeout=timeout):
        notifier = notifier_for(transport, topic)
        started = time.monotonic()
        for n in range(3):
            notifier.info({}, "e", n)
        [batch] = endpoint.batches.wait_for(1, timeout + PATIENCE)
        waited = time.monotonic() - started
    assert sorted(e["payload"] for e in batch) == [0, 1, 2]
    assert waited >= timeout * 0.9, "a partial batch was handed over before batch_timeout"


def test_failed_batch_is_dead_lettered_whole(transport: dovecote.Transport, topic: str) -> None:
    calls = Recorder()

    class Broken:
        def info(self, messages: list[dict[str, Any]]) -> None:
            calls.add(len(messages))
            raise RuntimeError("batch failed")

    with listening(transport, [Target(topic=topic)], [Broken()], batch=True, batch_size=2,
                   batch_timeout=30.0):
        notifier = notifier_for(transport, topic)
        notifier.info({}, "e", 1)
        notifier.info({}, "e", 2)
        calls.wait_for(1)
    dead = dovecote.take_dead_letters(transport, topic, "info")
    assert calls.items == [2]
    assert sorted(d.message["payload"] for d in dead) == [1, 2]
    assert all("RuntimeError('batch failed')" in str(d.reason) for d in dead)


# -- requeue, bounded redeliveries, dead letters --------------------------------------------
class Flaky:
    """``info`` fails (raises, or returns REQUEUE) for payloads listed in
    ``failures`` as many times as listed there (-1: always), then handles them."""

    def __init__(self, failures: dict[Any, int], *, how: str = "raise") -> None:
        self.failures = dict(failures)
        self.how = how
        self.calls = Recorder()  # payload of every call
        self.handled = Recorder()  # payload of every success
        self._lock = threading.Lock()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> Any:
        with self._lock:
            left = self.failures.get(payload, 0)
            if left > 0:
                self.failures[payload] = left - 1
        self.calls.add(payload)
        if left:
            if self.how == "raise":
                raise ValueError(f"cannot handle {payload}")
            return NotificationResult.REQUEUE
        self.handled.add(payload)
        return NotificationResult.HANDLED


def test_requeue_result_redelivers_until_handled(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = Flaky({"a": 2, "b": 1}, how="requeue")
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [endpoint], allow_requeue=True):
        notifier = notifier_for(transport, topic)
        for payload in ("a", "b", "c"):
            notifier.info({}, "e", payload)
        assert sorted(endpoint.handled.wait_for(3)) == ["a", "b", "c"]
    assert sorted(endpoint.calls.items) == ["a", "a", "a", "b", "b", "c"]
    requeued = sorted((line["redeliveries"], line["msg_id"] is not None) for line in logs
                      if line["event"] == "notification.requeued")
    assert requeued == [(1, True), (1, True), (2, True)]
    assert dovecote.take_dead_letters(transport, topic, "info", timeout=0.3) == []


@pytest.mark.parametrize("how", ["raise", "requeue"])
@pytest.mark.parametrize("pooled", [False, True], ids=["no-pool", "pool"])
def test_poison_is_dead_lettered_after_max_redeliveries_without_blocking_the_rest(
    transport: dovecote.Transport, topic: str, unique: str, how: str, pooled: bool
) -> None:
    endpoint = Flaky({"poison": -1}, how=how)
    pool = f"pool0_{unique}" if pooled else None
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [endpoint], allow_requeue=True,
                      pool=pool):
        notifier = notifier_for(transport, topic)
        notifier.info({"user": "u"}, "e.poison", "poison")
        for n in range(5):
            notifier.info({}, "e.good", n)
        assert sorted(endpoint.handled.wait_for(5)) == list(range(5))
        endpoint.calls.wait_for(5 + 4)  # the poison: 1 delivery + 3 redeliveries
    # stopped: whatever was in flight has settled
    assert endpoint.calls.items.count("poison") == 4
    [dead] = dovecote.take_dead_letters(transport, topic, "info")
    assert dead.message["payload"] == "poison"
    assert dead.message["event_type"] == "e.poison"
    assert dead.ctxt == {"user": "u"}
    assert dead.redeliveries == 3
    assert dead.error is None
    expected = ("ValueError('cannot handle poison')" if how == "raise"
                else "endpoint asked to requeue")
    assert dead.reason is not None
    assert expected in dead.reason
    assert "after 3 redeliveries" in dead.reason
    [parked] = [line for line in logs if line["event"] == "notification.dead_lettered"]
    assert parked["queue"] == f"{topic}.info.dead"
    assert parked["event_type"] == "e.poison"
    assert parked["reason"] == dead.reason
    assert sorted(line["redeliveries"] for line in logs
                  if line["event"] == "notification.requeued") == [1, 2, 3]


def test_max_redeliveries_is_configurable(transport: dovecote.Transport, topic: str) -> None:
    endpoint = Flaky({"poison": -1})
    with listening(transport, [Target(topic=topic)], [endpoint], allow_requeue=True,
                   max_redeliveries=1):
        notifier_for(transport, topic).info({}, "e", "poison")
        endpoint.calls.wait_for(2)
    assert endpoint.calls.items == ["poison", "poison"]
    [dead] = dovecote.take_dead_letters(transport, topic, "info")
    assert dead.redeliveries == 1
    assert "after 1 redeliveries" in str(dead.reason)


def test_without_allow_requeue_a_failure_is_dead_lettered_at_once(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = Flaky({"bad": -1})
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [endpoint]):
        notifier = notifier_for(transport, topic)
        notifier.info({}, "e", "bad")
        notifier.info({}, "e", "good")
        endpoint.calls.wait_for(2)
        endpoint.handled.wait_for(1)
    assert sorted(endpoint.calls.items) == ["bad", "good"]
    [dead] = dovecote.take_dead_letters(transport, topic, "info")
    assert dead.message["payload"] == "bad"
    assert dead.redeliveries == 0
    assert dead.reason == "endpoint raised ValueError('cannot handle bad')"
    assert [line["queue"] for line in logs if line["event"] == "notification.dead_lettered"] \
        == [f"{topic}.info.dead"]


def test_replay_dead_letters_to_a_fixed_endpoint(
    transport: dovecote.Transport, topic: str
) -> None:
    broken = Flaky({0: -1, 1: -1, 2: -1})
    with listening(transport, [Target(topic=topic)], [broken]):
        notifier = notifier_for(transport, topic)
        for n in range(3):
            notifier.info({"user": "u"}, "e", n)
        broken.calls.wait_for(3)
    fixed = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [fixed]):
        assert dovecote.replay_dead_letters(transport, topic, "info") == 3
        seen = fixed.recorder.wait_for(3)
    assert payloads(seen) == [0, 1, 2]
    assert all(s.ctxt == {"user": "u"} and s.event_type == "e" for s in seen)
    assert dovecote.take_dead_letters(transport, topic, "info", timeout=0.3) == []


def test_take_dead_letters_with_a_limit_leaves_the_rest(
    transport: dovecote.Transport, topic: str
) -> None:
    broken = Flaky(dict.fromkeys(range(3), -1))
    with listening(transport, [Target(topic=topic)], [broken]):
        notifier = notifier_for(transport, topic)
        for n in range(3):
            notifier.info({}, "e", n)
        broken.calls.wait_for(3)
    first = dovecote.take_dead_letters(transport, topic, "info", limit=2)
    rest = dovecote.take_dead_letters(transport, topic, "info")
    assert (len(first), len(rest)) == (2, 1)
    assert sorted(d.message["payload"] for d in first + rest) == [0, 1, 2]


# -- malformed bodies ---------------------------------------------------------------------
MALFORMED: list[str | bytes] = [
    b"not json at all",
    b"\xff\xfe\x00",
    "[1, 2, 3]",
    json.dumps({"oslo.version": "9.9", "oslo.message": "{}"}),
    json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}),
    json.dumps({"oslo.version": "2.0"}),
    envelope({"event_type": "no.priority", "payload": 1}),  # no priority: not a notification
    envelope({"priority": "BOGUS", "event_type": "e", "payload": 1}),
]


def test_malformed_bodies_are_dead_lettered_and_the_listener_goes_on(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = InfoEndpoint()
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [endpoint], allow_requeue=True):
        for body in MALFORMED:
            inject(transport, f"{topic}.info", body)
        notifier_for(transport, topic).info({}, "e.after", "good")
        [seen] = endpoint.recorder.wait_for(1)
    assert seen.payload == "good"
    dead = dovecote.take_dead_letters(transport, topic, "info")
    assert len(dead) == len(MALFORMED), [d.reason for d in dead]
    assert all(str(d.reason).startswith("malformed notification: ") for d in dead)
    assert sum(d.error is not None for d in dead) == 6  # the bodies that are not even JSON
    parked = [line for line in logs if line["event"] == "notification.dead_lettered"]
    assert len(parked) == len(MALFORMED)
    assert {line["queue"] for line in parked} == {f"{topic}.info.dead"}
    assert queue_depth(transport, f"{topic}.info") == 0


def test_replay_leaves_undecodable_dead_letters_parked(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]):
        inject(transport, f"{topic}.info", b"not json at all")
        notifier_for(transport, topic).info({}, "e", "good")
        endpoint.recorder.wait_for(1)
    assert dovecote.replay_dead_letters(transport, topic, "info", timeout=0.5) == 0
    [dead] = dovecote.take_dead_letters(transport, topic, "info")
    assert dead.error is not None


# -- stop and wait while notifications are in flight --------------------------------------
def test_stop_while_in_flight_acknowledges_only_what_was_handled(
    transport: dovecote.Transport, topic: str
) -> None:
    gate, started = threading.Event(), threading.Event()
    handled = Recorder()

    class Gated:
        def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                 metadata: Any) -> None:
            started.set()
            assert gate.wait(PATIENCE)
            handled.add(payload)

    count = 10
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=topic)], [Gated()], max_workers=1, max_in_flight=2)
    listener.start()
    notifier = notifier_for(transport, topic)
    for n in range(count):
        notifier.info({}, "e", n)
    assert started.wait(PATIENCE)
    listener.stop()
    gate.set()
    assert listener.wait(PATIENCE)
    first = list(handled.items)
    assert 0 < len(first) < count
    later = InfoEndpoint()
    with listening(transport, [Target(topic=topic)], [later]):
        later.recorder.wait_for(count - len(first))
    rest = payloads(later.recorder.items)
    assert sorted(first + rest) == list(range(count)), "lost or handled twice"


# -- endpoints as actors, the blocking executor --------------------------------------------
class InfoActor(pykka.ThreadingActor):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.thread: threading.Thread | None = None

    def on_start(self) -> None:
        self.thread = threading.current_thread()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.recorder.add(Seen("info", ctxt, publisher_id, event_type, payload, metadata))

    def error(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
              metadata: Any) -> None:
        raise ValueError(f"actor refused {payload}")


@pytest.mark.parametrize("as_proxy", [False, True], ids=["ref", "proxy"])
def test_endpoints_as_actors(transport: dovecote.Transport, topic: str, as_proxy: bool) -> None:
    recorder = Recorder()
    ref = InfoActor.start(recorder)
    try:
        actor_thread = ref.proxy().thread.get(timeout=PATIENCE)
        endpoint = ref.proxy() if as_proxy else ref
        with listening(transport, [Target(topic=topic)], [endpoint]):
            notifier = notifier_for(transport, topic)
            notifier.error({}, "e.refused", "x")
            for n in range(5):
                notifier.info({"n": n}, "e", n)
            seen = recorder.wait_for(5)
        assert payloads(seen) == list(range(5))
        assert all(s.thread is actor_thread for s in seen)
        assert ref.is_alive()
        [dead] = dovecote.take_dead_letters(transport, topic, "error")
        assert dead.reason == "endpoint raised ValueError('actor refused x')"
    finally:
        ref.stop()


def test_blocking_executor_runs_endpoints_in_the_starting_thread(
    transport: dovecote.Transport, topic: str
) -> None:
    endpoint = InfoEndpoint()
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=topic)], [endpoint], executor="blocking")
    starter = threading.Thread(target=listener.start, name="blocking-listener")
    starter.start()
    try:
        assert listener.wait_ready(PATIENCE)
        notifier = notifier_for(transport, topic)
        for n in range(3):
            notifier.info({}, "e", n)
        seen = endpoint.recorder.wait_for(3)
    finally:
        listener.stop()
        starter.join(PATIENCE)
    assert not starter.is_alive()
    assert listener.wait(PATIENCE)
    assert payloads(seen) == [0, 1, 2]
    assert all(s.thread is starter for s in seen)
