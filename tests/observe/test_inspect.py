"""Inspecting a running server, on every transport: each actor's event history
(``server.events()``), one message's way through the actors
(``server.trace()``), and the control endpoint answering from outside."""

from __future__ import annotations

import datetime
import threading
import time
from typing import Any

import pykka
import pytest
from _rpc_support import PATIENCE, delete_queues, running, wait_until

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("forget_queues")]

SECRET_ARG = "argument-S3CRET-value"
SECRET_ERROR = "error-text-S3CRET"
REQUIRED = {"event", "level", "timestamp", "actor", "actor_urn"}


class Api:
    def __init__(self) -> None:
        self.notified = threading.Event()
        self.message_id: str | None = None

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def fail(self, ctxt: dict[str, Any]) -> None:
        raise ValueError(SECRET_ERROR)

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        self.message_id = metadata["message_id"]
        self.notified.set()


class ActorApi(pykka.ThreadingActor):
    def hello(self, ctxt: dict[str, Any]) -> str:
        return "hi"


def msg_id_of(server: dovecote.MessageHandlingServer, method: str) -> str:
    """The id of the last call of ``method`` the server started."""
    started = [e for e in server.events() if e["event"] == "dispatch.started"
               and e.get("method") == method]
    assert started, f"no dispatch.started for {method}"
    return str(started[-1]["msg_id"])


def finished_trace(server: dovecote.MessageHandlingServer, msg_id: str) -> list[dict[str, Any]]:
    """The trace of ``msg_id`` once its last event (``dispatch.ok`` or
    ``dispatch.failed``, logged just after the reply) is in."""
    assert wait_until(lambda: any(e["event"] in ("dispatch.ok", "dispatch.failed")
                                  for e in server.trace(msg_id)))
    return server.trace(msg_id)


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_trace_follows_a_call_through_its_actors(
    transport: dovecote.Transport, topic: str, executor: str,
) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                     executor=executor)
    with running(server):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert client.call({}, "echo", value=SECRET_ARG) == SECRET_ARG
        msg_id = msg_id_of(server, "echo")
        steps = finished_trace(server, msg_id)
    names = [step["event"] for step in steps]
    assert names[:2] == ["message.received", "message.queued"]
    assert names[2:] == ["dispatch.started", "reply.sent", "dispatch.ok"]
    kinds = [step["kind"] for step in steps]
    handler = "worker" if executor == "threading" else "dispatcher"
    assert kinds == ["listener", "dispatcher", handler, handler, handler]
    assert [s["elapsed_ms"] for s in steps] == sorted(s["elapsed_ms"] for s in steps)
    assert steps[0]["elapsed_ms"] == 0
    assert all(isinstance(s["spent_ms"], float) for s in steps[:-1])
    assert steps[-1]["spent_ms"] is None
    assert all(set(step) >= REQUIRED for step in steps)
    assert SECRET_ARG not in repr(server.events())


def test_trace_goes_through_an_endpoint_actor(
    transport: dovecote.Transport, topic: str,
) -> None:
    actor = ActorApi.start()
    try:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [actor])
        with running(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            assert client.call({}, "hello") == "hi"
            steps = finished_trace(server, msg_id_of(server, "hello"))
    finally:
        actor.stop()
    handled = [s for s in steps if s["event"].startswith(("dispatch.", "reply."))]
    assert {s["kind"] for s in handled} == {"endpoint"}
    assert {s["actor_urn"] for s in handled} == {actor.actor_urn}
    assert [s["kind"] for s in steps[:2]] == ["listener", "dispatcher"]


def test_trace_follows_a_notification(transport: dovecote.Transport, topic: str) -> None:
    api = Api()
    listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [api])
    with running(listener):
        dovecote.Notifier(transport, publisher_id="p", topics=[topic]).info(
            {}, "thing.done", {"secret": SECRET_ARG})
        assert api.notified.wait(PATIENCE)
        assert api.message_id is not None
        steps = finished_trace(listener, api.message_id)
        assert SECRET_ARG not in repr(listener.events())
    assert [s["kind"] for s in steps[:2]] == ["listener", "dispatcher"]
    assert [s["event"] for s in steps[2:]] == ["dispatch.started", "dispatch.ok"]
    assert steps[-1]["event_type"] == "thing.done"


def test_events_filters(transport: dovecote.Transport, topic: str) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()])
    with running(server):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        client.call({}, "echo", value=1)
        middle = time.time()
        client.call({}, "echo", value=2)
        with pytest.raises(ValueError, match=SECRET_ERROR):
            client.call({}, "fail")
        assert wait_until(lambda: any(e["event"] == "dispatch.failed" for e in server.events()))
        everything = server.events()
        assert [e["time"] for e in everything] == sorted(e["time"] for e in everything)
        assert all(set(e) >= REQUIRED for e in everything)
        listener_urn = next(r["urn"] for r in server.actors() if r["kind"] == "listener")
        mine = server.events(actor=listener_urn)
        assert mine
        assert {e["actor_urn"] for e in mine} == {listener_urn}
        by_class = server.events(actor="ListenerActor")
        assert {e["actor_urn"] for e in by_class} == {listener_urn}
        assert server.events(actor="NoSuchActor") == []
        assert {e["kind"] for e in server.events(kind="worker")} == {"worker"}
        later = server.events(since=middle)
        assert later
        assert all(e["time"] > middle for e in later)
        iso = datetime.datetime.fromtimestamp(middle, datetime.UTC).isoformat()
        assert server.events(since=iso) == later
        assert server.events(limit=3) == everything[-3:]
        failed = next(e for e in everything if e["event"] == "dispatch.failed")
        assert failed["level"] == "error"
        assert server.events(msg_id=failed["msg_id"])[-1]["event"] == "dispatch.failed"


def test_history_is_bounded_and_can_be_off(transport: dovecote.Transport, topic: str) -> None:
    for size in (4, 0):
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                         event_history=size)
        with running(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            for i in range(10):
                assert client.call({}, "echo", value=i) == i
            events = server.events()
            per_actor: dict[str, int] = {}
            for event in events:
                per_actor[event["actor_urn"]] = per_actor.get(event["actor_urn"], 0) + 1
            assert all(count <= size for count in per_actor.values())
            assert (events == []) == (size == 0)
    with pytest.raises(ValueError, match="event_history"):
        dovecote.get_rpc_server(transport, Target(topic=topic), [Api()], event_history=-1)


def control_client(transport: dovecote.Transport, topic: str) -> dovecote.RPCClient:
    return dovecote.get_rpc_client(
        transport, Target(topic=topic, server="s1", namespace="dovecote.control", version="1.0"),
        timeout=PATIENCE)


def test_control_endpoint_answers_ping_actors_and_events(
    transport: dovecote.Transport, topic: str,
) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()])
    with running(server):
        control = control_client(transport, topic)
        assert control.call({}, "ping") == "pong"
        plain = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert plain.call({}, "oslo_rpc_server_ping") == "pong"
        with pytest.raises(ValueError, match=SECRET_ERROR):
            plain.call({}, "fail")
        plain.call({}, "echo", value=SECRET_ARG)
        actors = control.call({}, "actors")
        assert {"listener", "dispatcher", "worker"} <= {a["kind"] for a in actors}
        assert all({"kind", "urn", "alive", "mailbox", "handled", "failed"} <= set(a)
                   for a in actors)
        assert wait_until(lambda: any(e["event"] == "dispatch.failed"
                                      for e in control.call({}, "events", limit=1000)))
        events = control.call({}, "events", limit=1000)
        failed = next(e for e in events if e["event"] == "dispatch.failed")
        assert failed["error_type"] == "ValueError"
        assert SECRET_ERROR not in repr(events)
        assert SECRET_ARG not in repr(events)
        assert len(control.call({}, "events", limit=2)) == 2
        one = control.call({}, "events", msg_id=failed["msg_id"])
        assert {e.get("msg_id") for e in one if "msg_id" in e} == {failed["msg_id"]}
        # Inspecting does not push the history out: control calls are not recorded.
        before = len(server.events())
        for _ in range(20):
            control.call({}, "ping")
        assert not [e for e in server.events() if e.get("method") in ("ping", "actors", "events")]
        assert len(server.events()) == before


def test_control_endpoint_hides_the_password(rabbitmq: str, topic: str) -> None:
    transport = dovecote.get_transport(rabbitmq)
    password = transport.url.hosts[0].password
    assert password
    try:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()])
        with running(server):
            control = control_client(transport, topic)
            shown = repr(control.call({}, "actors")) + repr(control.call({}, "events"))
        assert "****" in shown
        assert f":{password}@" not in shown
    finally:
        transport.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.s1")


def test_control_endpoint_can_be_turned_off(transport: dovecote.Transport, topic: str) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                     control=False)
    with running(server):
        with pytest.raises((dovecote.NoSuchMethod, dovecote.UnsupportedVersion)):
            control_client(transport, topic).call({}, "ping")
        plain = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        with pytest.raises(dovecote.NoSuchMethod):
            plain.call({}, "oslo_rpc_server_ping")
