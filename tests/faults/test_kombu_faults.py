"""The kombu driver when things go wrong: malformed bodies published raw,
replies to queues that are gone, connections the broker closes, queues deleted
under a consumer, unreachable hosts, failover, and passwords kept out of every
error, repr and log line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import traceback
from typing import Any

import pytest
import structlog
from kombu import Producer
from test_kombu_driver import driver, poll_until, raw, ready, round_trip

import dovecote
from dovecote import _wire
from dovecote.drivers.base import PendingReply
from dovecote.drivers.kombu import KombuDriver

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

__all__ = ["driver", "raw"]  # fixtures shared with the driver tests

SECRET = "S3cretPassw0rd"


def publish_raw(raw: Any, routing_key: str, body: bytes | str, exchange: str = "openstack") -> None:
    Producer(raw.default_channel).publish(
        body, exchange=exchange, routing_key=routing_key, content_type="application/json",
        content_encoding="binary" if isinstance(body, bytes) else "utf-8",
    )


def envelope(message: object) -> str:
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


def close_my_connections() -> int:
    """``rabbitmqctl close_connection`` for every connection this test process
    opened (named ``dovecote:<pid>:...``), leaving other users of the broker be."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    mine = f'"dovecote:{os.getpid()}:'
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if mine in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test"],
                       capture_output=True, check=True, timeout=30)
    return len(pids)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- malformed input -------------------------------------------------------------------
BAD_REQUESTS: list[tuple[bytes | str, str]] = [
    (b"not json at all", "not JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    ("[1, 2, 3]", "not an object"),
    (json.dumps({"oslo.version": "9.9", "oslo.message": "{}"}), "envelope version"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}), "is not JSON"),
    (json.dumps({"oslo.version": "2.0", "oslo.message": "[1]"}), "not an object"),
    (json.dumps({"oslo.version": "2.0"}), "missing"),
]


def test_malformed_requests_come_out_with_error_and_are_acked(
    driver: KombuDriver, topic: str, raw: Any
) -> None:
    listener = driver.listen(dovecote.Target(topic=topic))
    for body, _ in BAD_REQUESTS:
        publish_raw(raw, topic, body)
    publish_raw(raw, topic, envelope({"method": "good", "args": {}}))
    got = poll_until(listener, len(BAD_REQUESTS) + 1)
    assert len(got) == len(BAD_REQUESTS) + 1
    for message, (_, reason) in zip(got, BAD_REQUESTS, strict=False):
        assert message.error is not None
        assert reason in message.error
        assert message.message == {}
        assert message.msg_id is None
    assert got[-1].error is None
    assert got[-1].message["method"] == "good"
    listener.cleanup()
    assert ready(raw, topic) == 0  # acknowledged when taken: nothing came back


def test_request_without_method_to_a_missing_reply_queue(
    driver: KombuDriver, topic: str, raw: Any
) -> None:
    """No method, and a reply queue that does not exist: the message still comes
    out (the server answers it with a failure), the reply is logged and dropped,
    and the listener keeps serving."""
    listener = driver.listen(dovecote.Target(topic=topic))
    try:
        publish_raw(raw, topic, envelope(
            {"args": {}, "_msg_id": "m1", "_reply_q": f"reply_gone_{topic}", "_unique_id": "u"}
        ))
        (message,) = poll_until(listener, 1)
        assert message.error is None
        assert message.msg_id == "m1"
        assert "method" not in message.message
        with structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            message.reply(failure=_wire.serialize_failure(KeyError("method")))
            message.heartbeat()
            assert time.monotonic() - started < 2
        dropped = [e for e in logs if e["event"] == "reply.undeliverable"]
        assert len(dropped) == 2
        assert dropped[0]["reply_q"] == f"reply_gone_{topic}"
        driver.send(dovecote.Target(topic=topic), {}, {"method": "next", "args": {}})
        assert [m.message["method"] for m in poll_until(listener, 1)] == ["next"]
    finally:
        listener.cleanup()


def test_malformed_notification_can_be_dead_lettered(
    driver: KombuDriver, topic: str, raw: Any
) -> None:
    listener = driver.listen_for_notifications([(dovecote.Target(topic=topic), "info")], None)
    try:
        publish_raw(raw, f"{topic}.info", b"{broken")
        (message,) = poll_until(listener, 1)
        assert message.error is not None
        assert message.msg_id is None
        queue = message.dead_letter(message.error)
        assert queue == f"{topic}.info.dead"
        listener.poll(0.1, 1)
        assert ready(raw, f"{topic}.info") == 0
        dead = raw.default_channel.basic_get(queue=queue, no_ack=True)
        assert dead.body == b"{broken"
        assert "not JSON" in dead.properties["application_headers"]["x-dovecote-error"]
    finally:
        listener.cleanup()
        raw.default_channel.queue_delete(f"{topic}.info.dead")


# -- lost connections -------------------------------------------------------------------
def test_listener_and_reply_consumer_reconnect_after_the_broker_closes_them(
    driver: KombuDriver, topic: str
) -> None:
    listener = driver.listen(dovecote.Target(topic=topic, server="s1"))
    try:
        assert round_trip(driver, listener, topic, "before")[1]["result"] == "before"
        fanout_queue = next(q.name for q in listener.queues if "_fanout_" in q.name)

        with structlog.testing.capture_logs() as logs:
            assert close_my_connections() >= 3  # listener, reply consumer, publisher
            started = time.monotonic()
            # the publisher's pooled connection is dead too: ensure() reconnects it
            driver.send(dovecote.Target(topic=topic), {}, {"method": "after", "args": {}})
            (again,) = poll_until(listener, 1, within=10)
            assert again.message["method"] == "after"
            assert time.monotonic() - started < 10
        events = [e["event"] for e in logs]
        assert "listener.connection_lost" in events
        assert "listener.reconnecting" in events
        assert "listener.reconnected" in events

        # the fanout queue came back under its own name
        assert fanout_queue in [q.name for q in listener.queues]
        driver.send(dovecote.Target(topic=topic, fanout=True), {}, {"method": "all", "args": {}})
        assert [m.message["method"] for m in poll_until(listener, 1)] == ["all"]

        # and replies still arrive through the reconnected reply consumer
        assert round_trip(driver, listener, topic, "after")[1]["result"] == "after"
    finally:
        listener.cleanup()


def test_unsettled_notifications_come_back_after_a_lost_connection(
    driver: KombuDriver, topic: str
) -> None:
    listener = driver.listen_for_notifications([(dovecote.Target(topic=topic), "info")], None)
    try:
        driver.send_notification(dovecote.Target(topic=f"{topic}.info"), {},
                                 {"event_type": "e", "payload": {"n": 1}}, version=2.0)
        (taken,) = poll_until(listener, 1)
        close_my_connections()
        taken.acknowledge()  # on a dead channel: skipped, the broker redelivers
        (again,) = poll_until(listener, 1, within=10)
        assert again.message["payload"] == {"n": 1}
        again.acknowledge()
        assert listener.poll(0.5, 1) == []
    finally:
        listener.cleanup()


def test_queue_deleted_under_a_listener_is_declared_again(
    driver: KombuDriver, topic: str, raw: Any
) -> None:
    listener = driver.listen(dovecote.Target(topic=topic))
    try:
        raw.default_channel.queue_delete(topic)
        assert poll_until(listener, 1, within=1) == []  # cancelled, then re-declared
        driver.send(dovecote.Target(topic=topic), {}, {"method": "back", "args": {}})
        assert [m.message["method"] for m in poll_until(listener, 1)] == ["back"]
    finally:
        listener.cleanup()


def test_failover_to_the_next_host(rabbitmq: str, topic: str) -> None:
    url = f"rabbit://guest:guest@127.0.0.1:{closed_port()},guest:guest@127.0.0.1:5672/"
    with dovecote.get_transport(url, max_retries=3, rabbit_retry_interval=0.05) as transport:
        listener = transport.driver.listen(dovecote.Target(topic=topic))
        transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})
        assert len(poll_until(listener, 1)) == 1


# -- unreachable hosts and passwords ------------------------------------------------------
def assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)


def test_unreachable_host_fails_with_a_clear_error_and_no_password(topic: str) -> None:
    url = f"rabbit://guest:{SECRET}@127.0.0.1:{closed_port()}/"
    with structlog.testing.capture_logs() as logs:
        transport = dovecote.get_transport(url, max_retries=1, rabbit_retry_interval=0.05,
                                           listen_retries=0)
        assert SECRET not in repr(transport)
        assert SECRET not in repr(transport.driver)
        started = time.monotonic()
        with pytest.raises(dovecote.MessageDeliveryFailure) as sent:
            transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})
        assert time.monotonic() - started < 5
        assert "127.0.0.1" in str(sent.value)
        assert "broker is running" in str(sent.value)
        assert_no_secret(sent.value)
        with pytest.raises(dovecote.MessageDeliveryFailure) as listened:
            transport.driver.listen(dovecote.Target(topic=topic))
        assert_no_secret(listened.value)
        pending = PendingReply(_wire.new_id())
        transport.driver.expect_reply(pending)
        with pytest.raises(dovecote.MessageDeliveryFailure) as called:
            transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}},
                                  reply=pending, timeout=1)
        assert_no_secret(called.value)
        transport.cleanup()
    assert logs
    assert SECRET not in repr(logs)


def test_wrong_password_fails_without_showing_it(rabbitmq: str, topic: str) -> None:
    url = f"rabbit://guest:{SECRET}@127.0.0.1:5672/"
    with structlog.testing.capture_logs() as logs, \
            dovecote.get_transport(url, max_retries=0) as transport:
        with pytest.raises(dovecote.MessageDeliveryFailure) as info:
            transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})
        assert_no_secret(info.value)
    assert SECRET not in repr(logs)
