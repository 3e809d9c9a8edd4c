"""What py-amqp cannot decode, and bodies in a codec the publisher chose (issue 20,
items 1 and 2), against the real broker with a hostile publisher writing raw
content headers (``_hostile_amqp``).

Before the fix, each header below made py-amqp raise while it read the frame: the
RPC listener reconnected, met the same message and looped forever, a notification
listener stalled, and the reply consumer dropped its connection. A body named
``punycode`` was decoded by py-amqp in time quadratic in its size (27 s of a silent
server for 1.2 MB). Now the delivery reaches dovecote as bytes, is refused as bad
input (answered when it is a call, parked when it is a notification, dropped with
a log line when it is a reply) and the listener goes on.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import pytest
import structlog
from _hostile_amqp import HostilePublisher, entry, nested_table, properties, timestamp
from _rpc_support import PATIENCE, delete_queues, envelope, reply_queue_of, serve, wait_until

import dovecote
from dovecote import Target, _wire
from dovecote.drivers.base import PendingReply

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("no_deaths")]

#: Content headers py-amqp 5.x cannot decode (each raised out of its frame reader).
UNDECODABLE = {
    "timestamp-header-past-9999": properties(
        headers=entry("sent_at", b"T", timestamp(2**63 - 1))),
    "milliseconds-as-seconds": properties(
        headers=entry("sent_at", b"T", timestamp(1_765_000_000_000))),
    "headers-nested-5000-deep": properties(headers=nested_table(5000)),
    "content-type-not-utf8": properties(content_type=b"\xff\xfe json"),
}
#: A content header py-amqp reads (a timestamp property in milliseconds): the message
#: itself is fine and is handled as any other.
READABLE = {"timestamp-property-in-ms": properties(timestamp_value=1_765_000_000_000)}
#: What follows a call's JSON to make its body valid punycode that takes Python's
#: codec time quadratic in its size (1.2 MB: about a minute here).
SLOW_CODEC_TAIL = b"-" + b"b" * 1_200_000


class Api:
    def echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value


@pytest.fixture(params=["rabbit", "amqp1"])
def server_url(request: pytest.FixtureRequest, rabbitmq: str) -> str:
    """Where the server under attack listens: the same broker, either protocol."""
    from conftest import AMQP1_URL, RABBIT_URL

    return RABBIT_URL if request.param == "rabbit" else AMQP1_URL


def _call_body(pending: PendingReply, reply_q: str, **args: Any) -> bytes:
    return envelope({"method": "echo", "args": args, "_msg_id": pending.msg_id,
                     "_reply_q": reply_q, "_unique_id": _wire.new_id()}).encode()


def _hostile_call(transport: dovecote.Transport, topic: str, raw_properties: bytes, *,
                  tail: bytes = b"", **args: Any) -> dict[str, Any]:
    """Publish a call with ``raw_properties`` (and ``tail`` after its JSON) to
    ``topic``; its reply (or fail)."""
    pending = PendingReply(_wire.new_id(), timeout=PATIENCE)
    transport.driver.expect_reply(pending)
    try:
        with HostilePublisher() as publisher:
            body = _call_body(pending, reply_queue_of(transport), **args) + tail
            publisher.publish(topic, body, raw_properties)
        reply = pending.wait()
    finally:
        transport.driver.forget(pending)
    assert reply is not None
    return dict(reply)


def _events(logs: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in names]


@pytest.mark.parametrize("variant", [*UNDECODABLE, *READABLE])
def test_a_call_whose_properties_cannot_be_decoded_is_answered_and_the_server_goes_on(
    server_url: str, topic: str, variant: str,
) -> None:
    raw_properties = {**UNDECODABLE, **READABLE}[variant]
    transport = dovecote.get_transport(server_url)
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]):
            reply = _hostile_call(transport, topic, raw_properties, value="hostile")
            assert client.call({}, "echo", value="next") == "next"
    finally:
        transport.cleanup()
        delete_queues(server_url, topic, f"{topic}.s1")
    lost = _events(logs, "listener.connection_lost", "listener.reconnecting")
    assert not lost, f"the listener lost its connection over one message: {lost}"
    if variant in UNDECODABLE and server_url.startswith("rabbit"):
        assert "could not be decoded" in (reply["failure"] or ""), reply
        malformed = _events(logs, "message.malformed")
        assert malformed
        assert "could not be decoded" in malformed[0]["reason"]
    else:  # readable (AMQP 1.0: the broker re-encodes the header, Proton reads it)
        assert reply["failure"] is None, reply
        assert reply["result"] == "hostile", reply


class Meter:
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.lock = threading.Lock()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        with self.lock:
            self.seen.append(payload)


def _notification(n: int) -> bytes:
    return envelope({"message_id": _wire.new_id(), "publisher_id": "hostile",
                     "event_type": "test.hostile", "priority": "INFO", "payload": n,
                     "timestamp": "2026-12-05 08:00:00.000000"}).encode()


#: Refused for its encoding, with headers py-amqp reads but cannot write back
#: (found by the fuzz suite: parking it failed, and it came round for ever).
UNWRITABLE_HEADERS = properties(content_encoding="punycode", headers=nested_table(600))


@pytest.mark.parametrize("variant", [*UNDECODABLE, "punycode", "punycode-unwritable-headers"])
def test_a_notification_that_cannot_be_read_is_parked_and_the_rest_handled(
    server_url: str, topic: str, variant: str,
) -> None:
    if variant == "punycode":
        raw_properties = properties(content_encoding="punycode")
    elif variant == "punycode-unwritable-headers":
        raw_properties = UNWRITABLE_HEADERS
    else:
        raw_properties = UNDECODABLE[variant]
    transport = dovecote.get_transport(server_url)
    meter = Meter()
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=topic)], [meter], allow_requeue=True)
    good = properties()
    try:
        with structlog.testing.capture_logs() as logs, \
                dovecote.testing.running(listener, timeout=PATIENCE), \
                HostilePublisher() as publisher:
            publisher.publish(f"{topic}.info", _notification(-1), raw_properties)
            for n in range(20):
                publisher.publish(f"{topic}.info", _notification(n), good)

            def settled() -> bool:
                return len(meter.seen) + len(_events(logs, "notification.dead_lettered")) >= 21

            assert wait_until(settled), (meter.seen, collections.Counter(e["event"] for e in logs))
        dead = dovecote.take_dead_letters(transport, topic, "info", timeout=0.5)
    finally:
        transport.cleanup()
        delete_queues(server_url, f"{topic}.info", f"{topic}.info.dead")
    assert sorted(n for n in meter.seen if n >= 0) == list(range(20))
    assert not _events(logs, "listener.connection_lost", "listener.reconnecting")
    if variant.startswith("punycode") or server_url.startswith("rabbit"):
        assert -1 not in meter.seen
        assert len(dead) == 1, dead
        assert "could not be decoded" in dead[0].reason or "content_encoding" in dead[0].reason
        assert not _events(logs, "notification.requeued"), "bad input is parked at once"
    else:  # AMQP 1.0: the broker re-encoded the header and Proton reads it
        assert -1 in meter.seen


@pytest.mark.parametrize("variant", [*UNDECODABLE, "punycode"])
def test_the_reply_consumer_drops_what_it_cannot_read_and_goes_on(
    rabbit_transport: dovecote.Transport, topic: str, variant: str,
) -> None:
    transport = rabbit_transport
    if variant == "punycode":
        raw_properties = properties(content_encoding="punycode")
    else:
        raw_properties = UNDECODABLE[variant]
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]):
            assert client.call({}, "echo", value="before") == "before"
            pending = PendingReply(_wire.new_id(), timeout=PATIENCE)
            transport.driver.expect_reply(pending)
            with HostilePublisher() as publisher:
                reply = envelope({"result": "forged", "failure": None, "ending": True,
                                  "_msg_id": pending.msg_id}).encode()
                publisher.publish(reply_queue_of(transport), reply, raw_properties)
            assert wait_until(lambda: bool(_events(logs, "reply.malformed",
                                                   "reply.connection_lost")))
            assert pending.wait(patience=0.05) is None, "an unreadable reply was delivered"
            transport.driver.forget(pending)
            assert client.call({}, "echo", value="after") == "after"
    finally:
        delete_queues(transport, topic, f"{topic}.s1")
    assert not _events(logs, "reply.connection_lost", "reply.reconnecting")
    (malformed,) = _events(logs, "reply.malformed")
    reason = malformed["reason"]
    assert "could not be decoded" in reason or "content_encoding" in reason


def test_a_body_in_a_slow_codec_is_refused_before_it_is_decoded(
    server_url: str, topic: str,
) -> None:
    """1.2 MB of valid punycode (a minute of decoding): answered at once with a
    failure that says why, the body never decoded."""
    transport = dovecote.get_transport(server_url)
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]):
            started = time.monotonic()
            reply = _hostile_call(transport, topic, properties(content_encoding="punycode"),
                                  tail=SLOW_CODEC_TAIL, value="slow")
            answered_in = time.monotonic() - started
            assert client.call({}, "echo", value="next") == "next"
    finally:
        transport.cleanup()
        delete_queues(server_url, topic, f"{topic}.s1")
    print(f"\n{server_url.split(':', maxsplit=1)[0]}: a 1.2 MB punycode call was answered in "
          f"{answered_in * 1000:.0f} ms")
    assert "content_encoding 'punycode' is not supported" in (reply["failure"] or ""), reply
    assert _events(logs, "message.malformed")


def test_a_listener_whose_connection_keeps_dropping_backs_off(
    rabbitmq: str, topic: str,
) -> None:
    """An operator (or a peer) deletes the server's queue over and over: each
    deletion cancels the consumer and the listener reconnects. The first time at
    once; while it keeps happening, after a growing wait, never in a hot loop."""
    url = (f"{rabbitmq}?rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2"
           "&rabbit_interval_max=1&at_least_once=true")
    transport = dovecote.get_transport(url)
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=3 * PATIENCE)
    stop = threading.Event()

    def delete_again_and_again() -> None:
        import amqp

        conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
        conn.connect()
        try:
            channel = conn.channel()
            while not stop.wait(0.01):
                channel.queue_delete(topic)
        finally:
            conn.collect()

    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]):
            assert client.call({}, "echo", value="before") == "before"
            deleter = threading.Thread(target=delete_again_and_again)
            deleter.start()
            stop.wait(3.0)  # the fault lasts three seconds
            stop.set()
            deleter.join()
            attempts = len(_events(logs, "listener.reconnecting"))
            # A call published while the queue is gone is unroutable: with
            # at_least_once it says so at once, and is sent again until the
            # listener has declared its queue again.
            answers: list[Any] = []

            def answered() -> bool:
                try:
                    answers.append(client.call({}, "echo", value="after"))
                except dovecote.MessageUndeliverable:
                    return False
                return True

            assert wait_until(answered, timeout=3.0)
            assert answers == ["after"]
    finally:
        transport.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.s1")
    print(f"\n{attempts} reconnection attempts in 3 s of a queue deleted every 10 ms")
    assert 2 <= attempts <= 12
