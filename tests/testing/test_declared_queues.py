"""``dovecote.testing.DeclaredQueues`` on ``memory://`` (RabbitMQ: see
test_plugin_leaves_no_queues.py), and ``dovecote.testing``'s explicit ``__all__``."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import dovecote
import dovecote.testing
from dovecote import Target
from dovecote.drivers.memory import get_broker
from dovecote.testing import DeclaredQueues, running, wait_for


class Audit:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        pass

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        raise RuntimeError("parked")


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.fixture
def name() -> str:
    return f"declared-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def transport(name: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(f"memory://{name}")
    yield transport
    transport.cleanup()


def test_what_a_test_declared_is_noted_and_deleted(transport: dovecote.Transport,
                                                   name: str) -> None:
    broker = get_broker(name)
    transport.driver.listen_dead_letters("there-before")  # another service's queue
    declared = DeclaredQueues(transport)
    server = dovecote.get_rpc_server(transport, Target(topic="rpc", server="s1"), [Echo()])
    listener = dovecote.get_notification_listener(
        transport, [Target(topic="events")], [Audit()], pool="pool-1")
    with running(server), running(listener), wait_for(listener, "error"):
        dovecote.Notifier(transport, publisher_id="p", driver="messagingv2",
                          topics=["events"]).error({}, "e", {})
        dovecote.Notifier(transport, publisher_id="p", driver="messagingv2",
                          topics=["there-before"]).info({}, "e", {})  # there-before.info
    made = set(broker.queue_names())
    assert {"rpc", "rpc.s1", "pool-1", "events.error", "events.error.dead"} <= made
    assert set(declared.names) >= {"rpc", "rpc.s1", "pool-1", "events.error.dead"}
    assert "there-before" not in declared.names
    assert declared.delete() == []
    assert set(broker.queue_names()) == {"there-before"}
    assert declared.names == []


def test_dovecote_testing_names_everything_it_offers() -> None:
    public = {name for name, value in vars(dovecote.testing).items()
              if not name.startswith("_") and not inspect.ismodule(value)
              and getattr(value, "__module__", "").startswith("dovecote.testing")}
    assert set(dovecote.testing.__all__) == public
    assert {"DeclaredQueues", "running", "wait_for", "call_endpoint", "SentNotifications",
            "forget_topic", "unique_topic", "mark"} <= public
    namespace: dict[str, Any] = {}
    exec("from dovecote.testing import *", namespace)  # what a user may write
    assert set(namespace) - {"__builtins__"} == public


def test_a_queue_that_cannot_be_deleted_is_reported_and_the_others_deleted(
    transport: dovecote.Transport, name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = DeclaredQueues(transport)
    transport.driver.listen(Target(topic="a")).cleanup()
    transport.driver.listen(Target(topic="b")).cleanup()
    delete = transport.driver.delete_queue

    def refuse_a(queue: str) -> None:
        if queue == "a":
            raise ConnectionError("the broker went away")
        delete(queue)

    monkeypatch.setattr(transport.driver, "delete_queue", refuse_a)
    assert declared.delete() == ["a: ConnectionError: the broker went away"]
    assert "b" not in get_broker(name).queue_names()
