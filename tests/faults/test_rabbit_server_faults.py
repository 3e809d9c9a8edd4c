"""A dovecote RPC server on ``rabbit://`` when things go wrong, through the
public API: the broker closes its connections, raw bodies that no client would
send land in its queue, a call goes to a topic nobody serves, a URL carries a
password. The server keeps serving without help and nothing hangs.

Connections are closed one by one with ``rabbitmqctl close_connection``, and
only this process's (the broker is shared with other test runs).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from kombu import Consumer, Queue
from test_kombu_driver import raw
from test_kombu_faults import (
    SECRET,
    assert_no_secret,
    close_my_connections,
    closed_port,
    envelope,
    publish_raw,
)

import dovecote

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

__all__ = ["raw"]  # a fixture shared with the driver tests


class Endpoint:
    def __init__(self) -> None:
        self.gate = threading.Event()  # holds ``wait_for_gate`` until set
        self.entered = threading.Event()
        self.casts: list[Any] = []
        self.cast_seen = threading.Event()

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def record(self, ctxt: dict[str, Any], value: Any) -> None:
        self.casts.append(value)
        self.cast_seen.set()

    def wait_for_gate(self, ctxt: dict[str, Any]) -> str:
        self.entered.set()
        assert self.gate.wait(30)
        return "through"


@contextlib.contextmanager
def serving(transport: dovecote.Transport, target: dovecote.Target, endpoint: Endpoint,
            **options: Any) -> Iterator[Any]:
    server = dovecote.get_rpc_server(transport, target, [endpoint], executor="threading",
                                     **options)
    server.start()
    try:
        yield server
    finally:
        endpoint.gate.set()
        server.stop()
        assert server.wait(10), "the server did not stop within 10 s"


def listeners(server: Any) -> list[dict[str, Any]]:
    return [r for r in server.actors() if r["kind"] == "listener"]


@pytest.fixture
def transport(rabbitmq: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(rabbitmq)
    yield transport
    transport.cleanup()


# -- the broker closes the server's connections -------------------------------------------
def test_server_serves_again_after_the_broker_closes_its_connections(
    transport: dovecote.Transport, rabbitmq: str, topic: str,
) -> None:
    endpoint = Endpoint()
    target = dovecote.Target(topic=topic, server="s1")
    with structlog.testing.capture_logs() as logs, serving(transport, target, endpoint) as server:
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=5)
        assert client.call({}, "echo", value="before") == "before"
        (listener_before,) = listeners(server)

        in_flight = client.call_async({}, "wait_for_gate")
        assert endpoint.entered.wait(5)
        assert close_my_connections() >= 3  # listener, publisher pool, reply consumer
        started = time.monotonic()
        endpoint.gate.set()
        outcome: Any
        try:
            outcome = in_flight.get(timeout=7)
        except dovecote.MessagingException as exc:
            outcome = exc
        assert time.monotonic() - started < 6  # within the call's timeout: never a hang
        if isinstance(outcome, BaseException):  # a clear error is acceptable
            assert isinstance(outcome, (dovecote.MessagingTimeout,
                                        dovecote.MessageDeliveryFailure)), repr(outcome)
            assert str(outcome)
        else:
            assert outcome == "through"

        # no action from the user: a client that was not there before is served at
        # once, and so is the one whose connections were closed
        with dovecote.get_transport(rabbitmq) as fresh:
            again = dovecote.get_rpc_client(fresh, dovecote.Target(topic=topic), timeout=10)
            assert again.call({"n": 1}, "echo", value={"after": [1]}) == {"after": [1]}
            assert again.prepare(server="s1").call({}, "echo", value="direct") == "direct"
            again.prepare(fanout=True).cast({}, "record", value="fanout")
            assert endpoint.cast_seen.wait(10)
            assert endpoint.casts == ["fanout"]
        assert client.call({}, "echo", value="old client") == "old client"

        (listener_after,) = listeners(server)
        assert listener_after["alive"]
        assert all(record["alive"] for record in server.actors())
        assert listener_after["handled"] > listener_before["handled"]
    events = [e["event"] for e in logs]
    assert "listener.connection_lost" in events
    assert "listener.reconnected" in events


# -- raw bodies no client would send --------------------------------------------------------
def test_malformed_bodies_are_logged_settled_and_the_server_answers_the_next_call(
    transport: dovecote.Transport, topic: str, raw: Any,
) -> None:
    reply_q = f"reply_{uuid.uuid4().hex}"
    gone_q = f"reply_gone_{uuid.uuid4().hex}"
    replies: list[Any] = []
    got_reply = threading.Event()

    def on_reply(body: Any, message: Any) -> None:
        replies.append(body)
        got_reply.set()

    reply_queue = Queue(reply_q, auto_delete=True)
    channel = raw.channel()
    Consumer(channel, [reply_queue], callbacks=[on_reply], no_ack=True).consume()
    bad: list[tuple[bytes | str, str]] = [
        (b"not json at all", "body is not JSON"),
        ("[1, 2, 3]", "body is a JSON list, not an object"),
        ('{"oslo.version": "9.9", "oslo.message": "{}"}', "envelope version '9.9'"),
        ('{"oslo.version": "2.0", "oslo.message": "{not json"}', "'oslo.message' is not JSON"),
    ]
    endpoint = Endpoint()
    # one worker: requests finish in queue order, so once the last call is answered
    # everything before it has been handled (and logged)
    with structlog.testing.capture_logs() as logs, \
            serving(transport, dovecote.Target(topic=topic), endpoint, max_workers=1) as server:
        (listener_before,) = listeners(server)
        for body, _ in bad:
            publish_raw(raw, topic, body)
        publish_raw(raw, topic, envelope({"args": {}, "_msg_id": "no-method", "_reply_q": reply_q,
                                          "_unique_id": "u1", "_timeout": None}))
        publish_raw(raw, topic, envelope({"method": "echo", "args": {"value": 1},
                                          "_msg_id": "gone", "_reply_q": gone_q,
                                          "_unique_id": "u2", "_timeout": None}))
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="good") == "good"

        deadline = time.monotonic() + 5  # the failure reply to the request without a method
        while not got_reply.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                raw.drain_events(timeout=max(0.01, deadline - time.monotonic()))
        assert got_reply.is_set()
        (listener_after,) = listeners(server)
        assert listener_after["urn"] == listener_before["urn"]  # the same actor, alive
        assert listener_after["alive"]
        assert listener_after["failed"] == 0
    channel.close()

    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    for _, reason in bad:
        matching = [e for e in failed if reason in e["error"]]
        assert len(matching) == 1, (reason, failed)
        assert matching[0]["outcome"] == "malformed"
    malformed = [e["reason"] for e in logs if e["event"] == "message.malformed"]
    assert len(malformed) == len(bad)
    for _, reason in bad:
        assert len([r for r in malformed if reason in r]) == 1, (reason, malformed)
    (no_method,) = [e for e in failed if e["msg_id"] == "no-method"]
    assert no_method["outcome"] == "rejected"
    assert "names no method" in no_method["error"]
    undeliverable = [e for e in logs if e["event"] == "reply.undeliverable"]
    assert [(e["reply_q"], e["msg_id"]) for e in undeliverable] == [(gone_q, "gone")]

    (failure_reply,) = replies
    inner = dovecote._wire.decode_body(failure_reply)
    assert inner["_msg_id"] == "no-method"
    assert inner["ending"] is True
    failure = dovecote._wire.loads(inner["failure"])
    assert "names no method" in failure["message"]

    # the server is gone: anything taken and not acknowledged would be back
    check = raw.channel()
    try:
        assert check.queue_declare(queue=topic, passive=True).message_count == 0
    finally:
        check.close()


# -- at-least-once calls --------------------------------------------------------------------
def test_at_least_once_call_to_a_topic_without_a_queue_fails_fast(
    transport: dovecote.Transport, topic: str,
) -> None:
    nobody = dovecote.Target(topic=f"{topic}_nobody")
    client = dovecote.get_rpc_client(transport, nobody, timeout=30,
                                     transport_options={"at_least_once": True})
    started = time.monotonic()
    with pytest.raises(dovecote.MessageUndeliverable) as info:
        client.call({}, "echo", value=1)
    assert time.monotonic() - started < 3
    assert info.value.routing_key == f"{topic}_nobody"
    assert f"{topic}_nobody" in str(info.value)
    assert transport.driver._pending == {}  # the waiter was forgotten

    # a cast is published the same way; without the option the call just times out
    with pytest.raises(dovecote.MessageUndeliverable):
        client.cast({}, "echo", value=1)
    started = time.monotonic()
    with pytest.raises(dovecote.MessagingTimeout):
        client.prepare(transport_options={}, timeout=1).call({}, "echo", value=1)
    assert time.monotonic() - started >= 1

    # and with a server there, at-least-once calls work as usual
    with serving(transport, nobody, Endpoint()):
        assert client.call({}, "echo", value=[1, {"a": None}]) == [1, {"a": None}]


# -- a server that cannot listen -------------------------------------------------------------
def test_a_server_that_cannot_listen_raises_from_start_and_is_done(topic: str) -> None:
    url = f"rabbit://guest:guest@127.0.0.1:{closed_port()}/"
    with dovecote.get_transport(url, max_retries=0, listen_retries=0) as unreachable:
        server = dovecote.get_rpc_server(unreachable, dovecote.Target(topic=topic), [Endpoint()])
        with pytest.raises(dovecote.MessageDeliveryFailure):
            server.start()
        assert not server.running
        assert server.wait(5)
        assert [r for r in server.actors() if r["alive"]] == []


# -- passwords --------------------------------------------------------------------------------
def test_a_password_never_shows_in_logs_reprs_or_errors(rabbitmq: str, topic: str) -> None:
    target = dovecote.Target(topic=topic, server="s1")
    bad_url = f"rabbit://guest:{SECRET}@127.0.0.1:{closed_port()}/"
    with structlog.testing.capture_logs() as logs:
        unreachable = dovecote.get_transport(bad_url, max_retries=1, rabbit_retry_interval=0.05,
                                             listen_retries=0)
        try:
            server = dovecote.get_rpc_server(unreachable, target, [Endpoint()])
            texts = [repr(unreachable), repr(unreachable.driver), repr(server)]
            with pytest.raises(dovecote.MessageDeliveryFailure) as started:
                server.start()
            assert_no_secret(started.value)
            assert "127.0.0.1" in str(started.value)
            texts.append(repr(server.actors()))
            client = dovecote.get_rpc_client(unreachable, dovecote.Target(topic=topic), timeout=2)
            texts.append(repr(client.transport))
            for send in (lambda: client.call({}, "echo", value=1),
                         lambda: client.cast({}, "echo", value=1)):
                begun = time.monotonic()
                with pytest.raises(dovecote.MessageDeliveryFailure) as sent:
                    send()
                assert time.monotonic() - begun < 5
                assert "127.0.0.1" in str(sent.value)
                assert_no_secret(sent.value)
        finally:
            unreachable.cleanup()
    assert logs  # the failures were logged (with the URL masked)
    for text in [*texts, repr(logs)]:
        assert SECRET not in text

    # the real broker, whose password is "guest" too: the URL shows up masked
    good = dovecote.get_transport(rabbitmq)
    try:
        with structlog.testing.capture_logs() as logs, \
                serving(good, target, Endpoint()) as server:
            client = dovecote.get_rpc_client(good, dovecote.Target(topic=topic), timeout=5)
            assert client.call({}, "echo", value="hi") == "hi"
            with pytest.raises(dovecote.NoSuchMethod) as missing:
                client.call({}, "missing")
            records = server.actors()
            texts = [repr(good), repr(good.driver), repr(server), repr(records), str(good.url),
                     "".join(str(missing.value))]
        texts.append(repr(logs))
    finally:
        good.cleanup()
    shown = [r["transport"] for r in records if r.get("transport")]
    assert shown
    assert all("127.0.0.1:5672" in t and "****" in t for t in shown)
    assert any(e.get("transport") for e in logs)
    for text in texts:
        assert "guest:guest" not in text
