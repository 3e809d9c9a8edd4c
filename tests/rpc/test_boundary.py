"""The boundary between what peers send (and what user code raises) and the
runtime, for RPC on every transport: serializers failing in both directions
on plain and actor endpoints, endpoints raising unprintable exceptions,
repeated requests, hostile ``_timeout`` values, deep nesting and oversized
bodies checked before they are parsed. The server always answers what it can
answer, logs the rest, and goes on; no actor and no thread dies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import structlog
from _rpc_support import (
    PATIENCE,
    Injector,
    Recorder,
    delete_queues,
    envelope,
    raw_call,
    reply_queue_of,
    serve,
)

import dovecote
from dovecote import Target, _wire
from dovecote.drivers.base import PendingReply

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_deaths")]


@pytest.fixture(autouse=True)
def _forget_queues(transport_url: str, topic: str) -> Iterator[None]:
    yield
    delete_queues(transport_url, topic, f"{topic}.s1")


class IncompatibleObjectVersion(Exception):
    """What oslo.versionedobjects raises for an object it cannot read."""


class Picky(dovecote.NoOpSerializer):
    """A serializer that refuses some values, as real ones do."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        self.threads.append(threading.current_thread().name)
        if ctxt.get("refuse") == "context":
            raise KeyError("project_id")
        return ctxt

    def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if entity == "old object":
            raise IncompatibleObjectVersion("Instance 9.9 cannot be read")
        if entity == "bad value":
            raise ValueError("not a flavor")
        return entity

    def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        if entity == "unsendable":
            raise RuntimeError("cannot serialize that result")
        return entity


class Api:
    def __init__(self) -> None:
        self.calls = Recorder()

    def echo(self, ctxt: Any, value: Any = None) -> Any:
        self.calls.add(value)
        return value


class ActorApi(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = Recorder()

    def actor_echo(self, ctxt: Any, value: Any = None) -> Any:
        self.calls.add(value)
        return value


def _client(transport: dovecote.Transport, topic: str) -> dovecote.RPCClient:
    return dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)


@pytest.mark.parametrize("method", ["echo", "actor_echo"])
def test_serializer_failures_reach_the_caller_and_the_server_goes_on(
    transport: dovecote.Transport, topic: str, method: str,
) -> None:
    serializer = Picky()
    actor = ActorApi.start()
    try:
        with structlog.testing.capture_logs() as logs, serve(
            transport, Target(topic=topic, server="s1"), [Api(), actor],
            serializer=serializer,
        ) as server:
            client = _client(transport, topic)
            with pytest.raises(KeyError, match="project_id"):
                client.call({"refuse": "context"}, method, value=1)
            with pytest.raises(ValueError, match="not a flavor"):
                client.call({}, method, value="bad value")
            with pytest.raises(dovecote.RemoteError) as remote:
                client.call({}, method, value="old object")
            assert remote.value.exc_type == "IncompatibleObjectVersion"
            with pytest.raises(RuntimeError, match="cannot serialize that result"):
                client.call({}, method, value="unsendable")
            assert client.call({}, method, value="fine") == "fine"
            assert all(record["alive"] for record in server.actors())
        assert actor.is_alive()
    finally:
        actor.stop()
    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    assert [e.get("stage") for e in failed] == [
        "deserialize", "deserialize", "deserialize", "serialize"]
    assert all(e["outcome"] == "error" for e in failed)
    # user code never ran in the hub
    assert serializer.threads
    assert not [name for name in serializer.threads if "dispatcher" in name]


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class Rude:
    def unprintable(self, ctxt: Any) -> None:
        raise Unprintable

    def unencodable(self, ctxt: Any) -> Any:
        return {"when": object()}

    def too_deep(self, ctxt: Any) -> Any:
        value: list[Any] = []
        for _ in range(5000):
            value = [value]
        return value

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_endpoints_that_raise_or_return_the_unsendable_are_answered(
    transport: dovecote.Transport, topic: str,
) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Rude()]) as server:
        client = _client(transport, topic)
        with pytest.raises(dovecote.RemoteError, match="Unprintable"):
            client.call({}, "unprintable")
        with pytest.raises(TypeError, match="cannot be sent"):
            client.call({}, "unencodable")
        with pytest.raises(TypeError, match="cannot be sent"):
            client.call({}, "too_deep")
        assert client.call({}, "echo", value=[[["fine"]]]) == [[["fine"]]]
        assert all(record["alive"] for record in server.actors())


# -- at most once: repeated requests ---------------------------------------------------------


def test_a_repeated_request_runs_once_and_is_answered_once(
    transport: dovecote.Transport, topic: str,
) -> None:
    api = Api()
    reply_q = reply_queue_of(transport)
    pending = _CountingReply(_wire.new_id(), timeout=PATIENCE)
    transport.driver.expect_reply(pending)
    call = envelope({"method": "echo", "args": {"value": "once"}, "_msg_id": pending.msg_id,
                     "_reply_q": reply_q, "_unique_id": "u-call"})
    cast = envelope({"method": "echo", "args": {"value": "cast"}, "_unique_id": "u-cast"})
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [api], max_workers=1), \
                Injector(transport) as injector:
            for body in (call, call, cast, cast, call):
                injector.put(topic, body)
            assert pending.wait() is not None
            # one worker takes the queue in order: once this is answered, the
            # repeats before it were seen and dropped
            assert _client(transport, topic).call({}, "echo", value="after") == "after"
    finally:
        transport.driver.forget(pending)
    assert api.calls.items == ["once", "cast", "after"]
    assert pending.answers == 1
    dropped = [e for e in logs if e["event"] == "message.duplicate"]
    assert sorted(e["unique_id"] for e in dropped) == ["u-call", "u-call", "u-cast"]


class _CountingReply(PendingReply):
    """Counts the final answers it was given."""

    answers = 0

    def deliver(self, reply: Any) -> None:
        if reply.get("ending", True):
            self.answers += 1
        super().deliver(reply)


# -- _timeout ------------------------------------------------------------------------------


class Slow:
    def nap(self, ctxt: Any, seconds: float) -> str:
        time.sleep(seconds)  # simulates work
        return "rested"


@pytest.mark.parametrize("timeout", [1e12, 1e-9, -1, 0.5, "soon", True, [5], 1e400, float("nan")],
                         ids=["huge", "tiny", "negative", "below1", "text", "bool", "list",
                              "infinite", "nan"])
def test_a_hostile_timeout_is_ignored_and_logged(
    transport: dovecote.Transport, topic: str, timeout: Any,
) -> None:
    """No heartbeat storm, no dead heartbeat thread: the call is answered and no
    heartbeat is sent for it (with ``huge``: call-monitor heartbeats still work
    after, so the heartbeat thread lives)."""
    reply_q = reply_queue_of(transport)
    pending = _HeartbeatCounter(_wire.new_id(), timeout=PATIENCE)
    transport.driver.expect_reply(pending)
    body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({
        "method": "nap", "args": {"seconds": 0.3}, "_msg_id": pending.msg_id,
        "_reply_q": reply_q, "_unique_id": _wire.new_id(), "_timeout": timeout})})
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Slow()]), \
                Injector(transport) as injector:
            injector.put(topic, body)
            reply = pending.wait()
            assert reply is not None
            assert reply["result"] == "rested"
            assert pending.heartbeats == 0
            if timeout == 1e12:
                client = dovecote.get_rpc_client(transport, Target(topic=topic),
                                                 timeout=PATIENCE, call_monitor_timeout=1)
                assert client.call({}, "nap", seconds=2.2) == "rested"  # kept alive by beats
    finally:
        transport.driver.forget(pending)
    assert [e["event"] for e in logs].count("message.bad_timeout") == 1


class _HeartbeatCounter(PendingReply):
    heartbeats = 0

    def deliver(self, reply: Any) -> None:
        if reply.get("ending") is False:
            self.heartbeats += 1
        super().deliver(reply)


def test_the_client_refuses_a_call_monitor_timeout_servers_ignore() -> None:
    transport = dovecote.get_transport("memory://")
    with pytest.raises(ValueError, match="between 1 and 86400"):
        dovecote.get_rpc_client(transport, Target(topic="t"), call_monitor_timeout=0.5)
    client = dovecote.get_rpc_client(transport, Target(topic="t"))
    with pytest.raises(ValueError, match="call_monitor_timeout"):
        client.prepare(call_monitor_timeout=1e9)
    assert client.prepare(call_monitor_timeout=0).prepare(call_monitor_timeout=None)


# -- bounds checked before work ------------------------------------------------------------


def test_deep_nesting_is_refused_and_answered(transport: dovecote.Transport, topic: str) -> None:
    deep = "[" * 5000 + "]" * 5000
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        reply = raw_call(transport, topic, None, body=(
            '{"method": "echo", "args": {"value": ' + deep + '}, "_msg_id": "{msg_id}", '
            '"_reply_q": "{reply_q}", "_unique_id": "' + _wire.new_id() + '"}'))
        assert "nested too deeply" in json.loads(reply["failure"])["message"]
        nested: Any = "core"
        for _ in range(300):  # deep, yet within the bound: it travels both ways
            nested = [nested]
        assert _client(transport, topic).call({}, "echo", value=nested) == nested
    assert [e["outcome"] for e in logs if e["event"] == "dispatch.failed"] == ["malformed"]


def test_size_is_checked_before_the_body_is_parsed(
    transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An oversized body that is not even JSON is refused for its size (so it
    was never parsed), and the caller, found by a plain scan, is told why."""
    monkeypatch.setattr(_wire, "MAX_BODY_SIZE", 4096)
    api = Api()
    with serve(transport, Target(topic=topic, server="s1"), [api]):
        body = ('{"_msg_id": "{msg_id}", "_reply_q": "{reply_q}", "method": "echo", '
                '"args": {"value": "' + "x" * 8192 + '" this is not JSON')
        reply = raw_call(transport, topic, None, body=body)
        message = json.loads(reply["failure"])["message"]
        assert "over the 4096-byte limit" in message
        assert "not JSON" not in message
        assert _client(transport, topic).call({}, "echo", value="small") == "small"
    assert api.calls.items == ["small"]


# -- the hub survives its handler ----------------------------------------------------------


def test_the_dispatcher_survives_a_bug_in_its_handler(
    transport: dovecote.Transport, topic: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dovecote.rpc._server import RPCHandler

    original = RPCHandler.prepare
    broken = threading.Event()

    def prepare_once_broken(self: RPCHandler, messages: Any, done: Any) -> Any:
        if not broken.is_set():
            broken.set()
            raise RuntimeError("a bug in prepare")
        return original(self, messages, done)

    monkeypatch.setattr(RPCHandler, "prepare", prepare_once_broken)
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]) as server:
        client = _client(transport, topic)
        with pytest.raises(RuntimeError, match="could not handle the request"):
            client.call({}, "echo", value="first")
        assert client.call({}, "echo", value="second") == "second"
        assert all(record["alive"] for record in server.actors())
    assert "dispatch.internal_error" in [e["event"] for e in logs]


def test_a_client_serializer_that_raises_raises_to_its_caller_only(
    transport: dovecote.Transport, topic: str,
) -> None:
    """The other direction, in the caller: an argument the client's serializer
    refuses, or a result it cannot read, is the caller's exception; the
    transport and later calls are unaffected."""

    class ClientSide(dovecote.NoOpSerializer):
        def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
            if entity == "unsendable":
                raise RuntimeError("cannot send that")
            return entity

        def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
            if entity == "unreadable":
                raise LookupError("cannot read that")
            return entity

    with serve(transport, Target(topic=topic, server="s1"), [Api()]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE,
                                         serializer=ClientSide())
        with pytest.raises(RuntimeError, match="cannot send that"):
            client.call({}, "echo", value="unsendable")
        with pytest.raises(LookupError, match="cannot read that"):
            client.call({}, "echo", value="unreadable")
        with pytest.raises(LookupError, match="cannot read that"):
            client.call_async({}, "echo", value="unreadable").get(timeout=PATIENCE)
        assert client.call({}, "echo", value="fine") == "fine"
    assert not transport.driver._pending  # no call left waiting
