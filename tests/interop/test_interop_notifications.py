"""Notifications between dovecote and the real oslo.messaging on one RabbitMQ:
oslo.messaging's ``Notifier`` (``messaging`` and ``messagingv2`` drivers) to a
dovecote listener, and a dovecote ``Notifier`` to an oslo.messaging listener
(threading executor), with pools shared across the two libraries too."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest
from _rpc_support import PATIENCE, delete_queues
from test_kombu_driver import oslo_conf
from test_notifications import (
    NOTIFIER_METHODS,
    TIMESTAMP,
    Endpoint,
    Recorder,
    Seen,
    listening,
    notification_queues,
)

import dovecote

pytestmark = [pytest.mark.interop, pytest.mark.broker, pytest.mark.timeout(60)]

CTXT = {"user_id": "u-1", "project_id": "p-1", "roles": ["admin", "reader"],
        "request_id": "req-abc", "extra": {"trace": [1, {"span": "x"}]}}
PAYLOAD = {"id": "i-1", "list": [1, 2.5, None, True, "ünïcode ☃"], "deep": {"a": {"b": []}}}


class OsloContext(dict[str, Any]):
    """What oslo.messaging's Notifier needs for a context: since 17.x it sends
    ``{}`` for a plain dict, and the result of ``redacted_copy()`` otherwise."""

    def redacted_copy(self) -> dict[str, Any]:
        return dict(self)


OSLO_CTXT = OsloContext(CTXT)


def without_client_timeout(ctxt: dict[str, Any]) -> dict[str, Any]:
    """oslo.messaging's rabbit driver adds ``client_timeout`` (None) to every
    context it unpacks, notifications included; the rest must come through."""
    assert ctxt.get("client_timeout") is None
    return {k: v for k, v in ctxt.items() if k != "client_timeout"}


@pytest.fixture
def dove(rabbitmq: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_notification_transport(rabbitmq)
    yield transport
    transport.cleanup()


@pytest.fixture
def oslo(rabbitmq: str) -> Iterator[Any]:
    transport = oslo_messaging.get_notification_transport(oslo_conf(), url=rabbitmq)
    yield transport
    transport.cleanup()


@pytest.fixture(autouse=True)
def _forget_queues(dove: dovecote.Transport, topic: str, unique: str) -> Iterator[None]:
    yield
    delete_queues(dove, *notification_queues(topic), *(f"pool{i}_{unique}" for i in range(3)))


@contextlib.contextmanager
def oslo_listening(transport: Any, topic: str, endpoints: list[Any],
                   pool: str | None = None) -> Iterator[Any]:
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], endpoints, executor="threading",
        pool=pool)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()
        listener.wait()


# -- oslo.messaging Notifier -> dovecote listener ---------------------------------------------
@pytest.mark.parametrize("driver", ["messaging", "messagingv2"])
def test_oslo_notifier_to_a_dovecote_listener(
    dove: dovecote.Transport, oslo: Any, topic: str, driver: str
) -> None:
    endpoint = Endpoint()
    with listening(dove, [dovecote.Target(topic=topic)], [endpoint]):
        notifier = oslo_messaging.Notifier(oslo, publisher_id="oslo.host-1", driver=driver,
                                           topics=[topic])
        for n, method in enumerate(NOTIFIER_METHODS):
            getattr(notifier, method)(OSLO_CTXT, f"event.{method}", {**PAYLOAD, "n": n})
        seen = endpoint.recorder.wait_for(len(NOTIFIER_METHODS))
    assert sorted((s.payload["n"], s.priority, s.event_type) for s in seen) == [
        (n, NOTIFIER_METHODS[m].lower(), f"event.{m}") for n, m in enumerate(NOTIFIER_METHODS)]
    for s in seen:
        assert s.ctxt == CTXT
        assert s.publisher_id == "oslo.host-1"
        assert {k: v for k, v in s.payload.items() if k != "n"} == PAYLOAD
        assert set(s.metadata) == {"message_id", "timestamp"}
        assert TIMESTAMP.match(s.metadata["timestamp"])


def test_oslo_notifier_to_a_dovecote_listener_with_requeue_and_dead_letters(
    dove: dovecote.Transport, oslo: Any, topic: str
) -> None:
    """A notification oslo.messaging sent goes through dovecote's redeliveries and
    dead letter intact, and replays to a fixed endpoint."""
    calls = Recorder()

    class Broken:
        def error(self, *args: Any) -> None:
            calls.add(args[3])
            raise RuntimeError("not today")

    with listening(dove, [dovecote.Target(topic=topic)], [Broken()], allow_requeue=True):
        notifier = oslo_messaging.Notifier(oslo, publisher_id="oslo.host-1",
                                           driver="messagingv2", topics=[topic])
        notifier.error(OSLO_CTXT, "compute.fault", {**PAYLOAD, "n": 1})
        notifier.error(OSLO_CTXT, "compute.fault", {**PAYLOAD, "n": 2})
        calls.wait_for(8)  # each: 1 delivery + 3 redeliveries
    [dead] = dovecote.take_dead_letters(dove, topic, "error", limit=1)
    assert (dead.ctxt, dead.redeliveries) == (CTXT, 3)
    assert {k: v for k, v in dead.message["payload"].items() if k != "n"} == PAYLOAD
    assert "RuntimeError('not today')" in str(dead.reason)
    endpoint = Endpoint()
    with listening(dove, [dovecote.Target(topic=topic)], [endpoint]):
        assert dovecote.replay_dead_letters(dove, topic, "error") == 1
        [seen] = endpoint.recorder.wait_for(1)
    assert (seen.ctxt, seen.publisher_id, seen.event_type) == (
        CTXT, "oslo.host-1", "compute.fault")
    assert {dead.message["payload"]["n"], seen.payload["n"]} == {1, 2}


# -- dovecote Notifier -> oslo.messaging listener ---------------------------------------------
class OsloEndpoint:
    """An oslo.messaging notification endpoint recording what it got."""

    def __init__(self) -> None:
        self.recorder = Recorder()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.recorder.add(Seen("info", ctxt, publisher_id, event_type, payload, metadata))

    def warn(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.recorder.add(Seen("warn", ctxt, publisher_id, event_type, payload, metadata))


@pytest.mark.parametrize("driver", ["messaging", "messagingv2"])
def test_dovecote_notifier_to_an_oslo_listener(
    dove: dovecote.Transport, oslo: Any, topic: str, driver: str
) -> None:
    endpoint = OsloEndpoint()
    with oslo_listening(oslo, topic, [endpoint]):
        notifier = dovecote.Notifier(dove, publisher_id="dove.host-1", driver=driver,
                                     topics=[topic])
        notifier.info(CTXT, "compute.create", PAYLOAD)
        notifier.warning(CTXT, "compute.slow", {"n": 1})
        seen = endpoint.recorder.wait_for(2)
    by_priority = {s.priority: s for s in seen}
    assert set(by_priority) == {"info", "warn"}
    info = by_priority["info"]
    assert (without_client_timeout(info.ctxt), info.publisher_id, info.event_type,
            info.payload) == (CTXT, "dove.host-1", "compute.create", PAYLOAD)
    assert TIMESTAMP.match(info.metadata["timestamp"])
    assert info.metadata["message_id"]
    assert by_priority["warn"].payload == {"n": 1}


def test_dovecote_notifier_to_oslo_pools(
    dove: dovecote.Transport, oslo: Any, topic: str, unique: str
) -> None:
    """Two oslo.messaging pools each get every notification once."""
    first, second = OsloEndpoint(), OsloEndpoint()
    count = 10
    with oslo_listening(oslo, topic, [first], pool=f"pool0_{unique}"), \
            oslo_listening(oslo, topic, [second], pool=f"pool1_{unique}"):
        notifier = dovecote.Notifier(dove, publisher_id="dove", topics=[topic])
        for n in range(count):
            notifier.info({}, "e", n)
        first.recorder.wait_for(count)
        second.recorder.wait_for(count)
    assert sorted(s.payload for s in first.recorder.items) == list(range(count))
    assert sorted(s.payload for s in second.recorder.items) == list(range(count))


def test_one_pool_shared_by_dovecote_and_oslo_listeners(
    dove: dovecote.Transport, oslo: Any, topic: str, unique: str
) -> None:
    """A dovecote listener and an oslo.messaging listener in one pool declare the
    same queue and share its notifications; another pool still gets all of them."""
    everyone_has_one = threading.Event()
    total = Recorder()

    class Member(OsloEndpoint):
        def info(self, *args: Any) -> None:
            super().info(*args)
            if len(dove_member.recorder) and len(oslo_member.recorder):
                everyone_has_one.set()
            everyone_has_one.wait(PATIENCE)
            total.add(args[3])

    dove_member, oslo_member, other_pool = Member(), Member(), OsloEndpoint()
    pool = f"pool0_{unique}"
    count = 20
    with listening(dove, [dovecote.Target(topic=topic)], [dove_member], pool=pool,
                   max_in_flight=1), \
            oslo_listening(oslo, topic, [oslo_member], pool=pool), \
            oslo_listening(oslo, topic, [other_pool], pool=f"pool1_{unique}"):
        notifier = oslo_messaging.Notifier(oslo, publisher_id="oslo", driver="messagingv2",
                                           topics=[topic])
        for n in range(count):
            notifier.info({}, "e", n)
        assert everyone_has_one.wait(PATIENCE), "one library took every notification"
        total.wait_for(count)
        other_pool.recorder.wait_for(count)
    assert sorted(total.items) == list(range(count))
    assert len(dove_member.recorder) > 0
    assert len(oslo_member.recorder) > 0
    assert sorted(s.payload for s in other_pool.recorder.items) == list(range(count))
