"""The ``amqp1://`` driver through the driver contract, on the real RabbitMQ
(its AMQP 1.0 plugin). Every test uses its own topic, and deletes its queues."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
import structlog
from _rpc_support import delete_queues
from proton import Message
from proton.utils import BlockingConnection

import dovecote
from dovecote import Target
from dovecote.drivers.amqp1 import Amqp1Driver, plan_named
from dovecote.drivers.base import IncomingMessage, Listener, PendingReply

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

URL = "amqp1://guest:guest@127.0.0.1:5672/"


def _proton() -> BlockingConnection:
    return BlockingConnection(
        "amqp://127.0.0.1:5672", timeout=5, user="guest", password="guest",
        allowed_mechs="PLAIN", allow_insecure_mechs=True, virtual_host="vhost:/",
    )


@pytest.fixture
def queues(rabbitmq: str) -> Iterator[list[str]]:
    """Names of queues a test made; deleted afterwards."""
    names: list[str] = []
    yield names
    delete_queues(rabbitmq, *names)


@pytest.fixture
def driver(rabbitmq: str) -> Iterator[Amqp1Driver]:
    transport = dovecote.get_transport(URL, reconnect_delay=0.05, connect_timeout=3)
    assert isinstance(transport.driver, Amqp1Driver)
    yield transport.driver
    transport.cleanup()


def drain(
    listener: Listener, count: int, *, within: float = 5.0, max_messages: int = 10,
) -> list[IncomingMessage]:
    """Poll until ``count`` messages came (or ``within`` seconds passed)."""
    got: list[IncomingMessage] = []
    deadline = time.monotonic() + within
    while len(got) < count and time.monotonic() < deadline:
        got.extend(listener.poll(0.2, max_messages))
    return got


def quiet(*listeners: Listener, within: float = 0.5) -> list[IncomingMessage]:
    """What arrives on ``listeners`` within ``within`` seconds (expected: nothing)."""
    got: list[IncomingMessage] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for listener in listeners:
            got.extend(listener.poll(0.05, 10))
    return got


def answer(pending: PendingReply, seconds: float = 5.0) -> Any:
    """The reply's body (works with both PendingReply.wait signatures)."""
    return pending.wait(seconds)


def call(
    driver: Any, topic: str, method: str, *, timeout: float = 5, ctxt: dict[str, Any] | None = None,
    call_monitor_timeout: float | None = None,
) -> PendingReply:
    """Send a call to ``topic`` and return its pending reply."""
    pending = PendingReply(dovecote._wire.new_id())
    driver.expect_reply(pending)
    driver.send(Target(topic=topic), ctxt or {}, {"method": method, "args": {}}, reply=pending,
                timeout=timeout, call_monitor_timeout=call_monitor_timeout)
    return pending


# -- RPC --------------------------------------------------------------------------------


def test_cast_to_topic_competing_consumers(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.append(topic)
    first, second = driver.listen(Target(topic=topic)), driver.listen(Target(topic=topic))
    try:
        quiet(first, second, within=0.2)  # both grant credit
        for i in range(20):
            driver.send(Target(topic=topic), {"n": i}, {"method": "m", "args": {"i": i}})
        got: dict[int, list[int]] = {0: [], 1: []}
        deadline = time.monotonic() + 5
        while len(got[0]) + len(got[1]) < 20 and time.monotonic() < deadline:
            for index, listener in enumerate((first, second)):
                got[index].extend(m.message["args"]["i"] for m in listener.poll(0.05, 5))
        assert sorted(got[0] + got[1]) == list(range(20))  # each exactly once
        assert got[0], "shared, not copied"
        assert got[1], "shared, not copied"
        assert not quiet(first, second)
    finally:
        first.cleanup()
        second.cleanup()


def test_cast_to_server_and_fanout(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.extend([topic, f"{topic}.a", f"{topic}.b"])
    a = driver.listen(Target(topic=topic, server="a"))
    b = driver.listen(Target(topic=topic, server="b"))
    try:
        driver.send(Target(topic=topic, server="a"), {}, {"method": "only_a", "args": {}})
        [msg] = drain(a, 1)
        assert msg.message["method"] == "only_a"
        assert msg.msg_id is None
        assert not quiet(b)
        driver.send(Target(topic=topic, fanout=True), {"k": "v"}, {"method": "all", "args": {}})
        for listener in (a, b):
            [msg] = drain(listener, 1)
            assert (msg.message["method"], msg.ctxt) == ("all", {"k": "v"})
        assert not quiet(a, b)
    finally:
        a.cleanup()
        b.cleanup()


def test_call_reply_heartbeat_and_failure(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.append(topic)
    listener = driver.listen(Target(topic=topic))
    try:
        pending = call(driver, topic, "add", ctxt={"user": "u"}, call_monitor_timeout=4)
        [msg] = drain(listener, 1)
        assert msg.wants_reply
        assert msg.msg_id == pending.msg_id
        assert msg.call_monitor_timeout == 4
        msg.heartbeat()
        msg.reply(result={"sum": 3})
        body = answer(pending)
        assert body is not None
        assert body["result"] == {"sum": 3}
        assert body["ending"] is True
        driver.forget(pending)

        failing = call(driver, topic, "boom")
        [msg] = drain(listener, 1)
        msg.reply(failure=dovecote._wire.serialize_failure(ValueError("no"), ["tb\n"]))
        body = answer(failing)
        assert json.loads(body["failure"])["class"] == "ValueError"
    finally:
        listener.cleanup()


def test_call_expires_at_the_broker(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.append(topic)
    listener = driver.listen(Target(topic=topic))
    try:
        call(driver, topic, "late", timeout=0.2)
        driver.send(Target(topic=topic), {}, {"method": "cast", "args": {}})
        time.sleep(0.5)  # let the call's TTL run out at the broker
        got = drain(listener, 1)
        assert [m.message["method"] for m in got + quiet(listener)] == ["cast"]
    finally:
        listener.cleanup()


def test_malformed_body_is_an_error_and_the_listener_keeps_going(
    driver: Amqp1Driver, topic: str, queues: list[str],
):
    queues.append(topic)
    listener = driver.listen(Target(topic=topic))
    raw = _proton()
    try:
        sender = raw.create_sender(f"/amq/queue/{topic}")
        sender.send(Message(body=b"{not json", inferred=True))
        sender.send(Message(body=42))  # an AmqpValue int, not text
        sender.send(Message(body='{"oslo.version": "9.9", "oslo.message": "{}"}'))
        driver.send(Target(topic=topic), {}, {"method": "fine", "args": {}})
        got = drain(listener, 4)
        assert [m.error is not None for m in got] == [True, True, True, False]
        assert "not JSON" in str(got[0].error)
        assert "9.9" in str(got[2].error)
        assert got[3].message["method"] == "fine"
    finally:
        raw.close()
        listener.cleanup()


def test_poll_is_bounded_and_credit_keeps_a_flood_at_the_broker(
    rabbitmq: str, topic: str, queues: list[str],
):
    queues.append(topic)
    transport = dovecote.get_transport(URL + "?prefetch=3")
    driver = transport.driver
    listener = driver.listen(Target(topic=topic))
    try:
        started = time.monotonic()
        assert listener.poll(0.2, 10) == []
        assert time.monotonic() - started < 0.5
        for i in range(30):
            driver.send(Target(topic=topic), {}, {"method": "m", "args": {"i": i}})
        assert len(listener.poll(1.0, 1)) == 1
        check = amqp.Connection(host="127.0.0.1:5672")
        check.connect()
        try:
            ready = check.channel().queue_declare(topic, passive=True).message_count
        finally:
            check.close()
        assert ready >= 30 - 1 - 3  # at most `prefetch` left the broker unasked
        assert len(drain(listener, 29, max_messages=50)) == 29
    finally:
        listener.cleanup()
        transport.cleanup()


# -- notifications -----------------------------------------------------------------------


def _notify(driver: Amqp1Driver, topic: str, priority: str, n: int, version: float = 2.0) -> None:
    driver.send_notification(
        Target(topic=f"{topic}.{priority}"), {"req": n},
        {"event_type": "thing.happened", "priority": priority.upper(), "payload": {"n": n},
         "publisher_id": "test", "message_id": str(n), "timestamp": "now"},
        version=version,
    )


def test_notification_priorities_and_versions(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.extend([f"{topic}.info", f"{topic}.error"])
    listener = driver.listen_for_notifications(
        [(Target(topic=topic), "info"), (Target(topic=topic), "error")], None)
    try:
        _notify(driver, topic, "info", 1)
        _notify(driver, topic, "error", 2, version=1.0)
        _notify(driver, topic, "warn", 3)  # nobody listens
        got = drain(listener, 2)
        assert sorted(m.message["payload"]["n"] for m in got) == [1, 2]
        assert all(m.msg_id is None and not m.wants_reply for m in got)
        assert {m.ctxt["req"] for m in got} == {1, 2}
        for msg in got:
            msg.acknowledge()
        assert not quiet(listener)
    finally:
        listener.cleanup()
    raw = _proton()  # the wire: 2.0 wraps the message in the envelope, 1.0 does not
    try:
        _notify(driver, topic, "info", 4)
        _notify(driver, topic, "info", 5, version=1.0)
        receiver = raw.create_receiver(f"/amq/queue/{topic}.info", credit=2)
        received = [receiver.receive(timeout=5) for _ in range(2)]  # keep them: .body is a view
        bodies = [json.loads(bytes(m.body)) for m in received]
        receiver.accept()
        receiver.accept()
        assert "oslo.message" in bodies[0]
        assert bodies[1]["payload"] == {"n": 5}
    finally:
        raw.close()


def test_pools_each_get_every_notification_members_share(
    driver: Amqp1Driver, topic: str, queues: list[str],
):
    pool_a, pool_b = f"{topic}_pool_a", f"{topic}_pool_b"
    queues.extend([pool_a, pool_b])
    targets = [(Target(topic=topic), "info")]
    a1 = driver.listen_for_notifications(targets, pool_a)
    a2 = driver.listen_for_notifications(targets, pool_a)
    b = driver.listen_for_notifications(targets, pool_b)
    try:
        quiet(a1, a2, b, within=0.2)
        for n in range(10):
            _notify(driver, topic, "info", n)
        got_b = drain(b, 10)
        assert sorted(m.message["payload"]["n"] for m in got_b) == list(range(10))
        got_a: dict[int, list[IncomingMessage]] = {0: [], 1: []}
        deadline = time.monotonic() + 5
        while len(got_a[0]) + len(got_a[1]) < 10 and time.monotonic() < deadline:
            for index, listener in enumerate((a1, a2)):
                got_a[index].extend(listener.poll(0.05, 3))
        numbers = sorted(m.message["payload"]["n"] for m in got_a[0] + got_a[1])
        assert numbers == list(range(10))
        assert got_a[0]
        assert got_a[1]
        for msg in [*got_b, *got_a[0], *got_a[1]]:
            msg.acknowledge()
        assert not quiet(a1, a2, b)
    finally:
        for listener in (a1, a2, b):
            listener.cleanup()


def test_notification_settled_only_on_acknowledge(
    driver: Amqp1Driver, topic: str, queues: list[str],
):
    queues.append(f"{topic}.info")
    targets = [(Target(topic=topic), "info")]
    listener = driver.listen_for_notifications(targets, None)
    _notify(driver, topic, "info", 1)
    [msg] = drain(listener, 1)
    listener.cleanup()  # not acknowledged: back to the broker
    listener = driver.listen_for_notifications(targets, None)
    try:
        [msg] = drain(listener, 1)
        assert msg.message["payload"] == {"n": 1}
        msg.acknowledge()
        listener.poll(0.1, 1)  # the polling thread settles it
    finally:
        listener.cleanup()
    listener = driver.listen_for_notifications(targets, None)
    try:
        assert not quiet(listener)
    finally:
        listener.cleanup()


def test_requeue_counts_and_dead_letter(driver: Amqp1Driver, topic: str, queues: list[str]):
    queues.extend([f"{topic}.info", f"{topic}.info.dead"])
    listener = driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    raw = _proton()
    try:
        _notify(driver, topic, "info", 7)
        for expected in range(3):
            [msg] = drain(listener, 1)
            assert msg.redeliveries == expected
            msg.requeue()
        [msg] = drain(listener, 1)
        assert msg.redeliveries == 3
        assert msg.dead_letter("gave up after 3") == f"{topic}.info.dead"
        assert not quiet(listener)
        receiver = raw.create_receiver(f"/amq/queue/{topic}.info.dead", credit=1)
        parked = receiver.receive(timeout=5)
        receiver.accept()
        assert parked.properties["x-dovecote-error"] == "gave up after 3"
        assert parked.properties["x-dovecote-redeliveries"] == 3
        assert dovecote._wire.decode_body(bytes(parked.body))["payload"] == {"n": 7}
    finally:
        raw.close()
        listener.cleanup()


# -- connections ---------------------------------------------------------------------------


def test_survives_the_broker_dropping_connections(drop_vhost: str, topic: str):
    transport = dovecote.get_transport(
        f"amqp1://guest:guest@127.0.0.1:5672/{drop_vhost}?reconnect_delay=0.05&heartbeat=1")
    driver = transport.driver
    rpc = driver.listen(Target(topic=topic))
    notes = driver.listen_for_notifications([(Target(topic=topic), "info")], None)
    try:
        pending = call(driver, topic, "m")
        [msg] = drain(rpc, 1)
        msg.reply(result=1)
        assert answer(pending)["result"] == 1
        with structlog.testing.capture_logs() as logs:
            subprocess.run(
                ["rabbitmqctl", "close_all_connections", "--vhost", drop_vhost, "test"],
                capture_output=True, check=True, timeout=60,
            )
            quiet(rpc, notes, within=0.5)  # they notice, and reconnect
            pending = call(driver, topic, "again", timeout=10)
            _notify(driver, topic, "info", 1)
            [msg] = drain(rpc, 1, within=10)
            assert msg.message["method"] == "again"
            msg.reply(result=2)
            assert answer(pending, 10)["result"] == 2
            [note] = drain(notes, 1, within=10)
            note.acknowledge()
        events = {entry["event"] for entry in logs}
        assert "listener.reconnecting" in events
        assert all("guest:guest" not in json.dumps(entry, default=str) for entry in logs)
    finally:
        rpc.cleanup()
        notes.cleanup()
        transport.cleanup()
        check = amqp.Connection(host="127.0.0.1:5672", virtual_host=drop_vhost)
        check.connect()
        for name in (topic, f"{topic}.info"):
            check.channel().queue_delete(name)
        check.close()


def test_failover_to_the_next_host(rabbitmq: str, topic: str, queues: list[str]):
    queues.append(topic)
    transport = dovecote.get_transport(
        "amqp1://guest:secret1@127.0.0.1:1,guest:guest@127.0.0.1:5672/")
    try:
        listener = transport.driver.listen(Target(topic=topic))
        transport.driver.send(Target(topic=topic), {}, {"method": "m", "args": {}})
        assert len(drain(listener, 1)) == 1
        listener.cleanup()
    finally:
        transport.cleanup()


def test_no_password_in_repr_errors_or_logs(rabbitmq: str):
    url = "amqp1://guest:s3cr3t-pw@127.0.0.1:1/?reconnect_delay=0.01&connect_timeout=1"
    with structlog.testing.capture_logs() as logs:
        transport = dovecote.get_transport(url)
        try:
            assert "s3cr3t" not in repr(transport.driver)
            assert "s3cr3t" not in repr(transport)
            with pytest.raises(dovecote.MessageDeliveryFailure) as info:
                transport.driver.send(Target(topic="t"), {}, {"method": "m", "args": {}},
                                      retry=1)
            assert "s3cr3t" not in str(info.value)
            # an unreachable broker: listen() raises, as on rabbit://
            with pytest.raises(dovecote.MessageDeliveryFailure, match="Could not listen") as info:
                transport.driver.listen(Target(topic="t"))
            assert "s3cr3t" not in str(info.value)
            assert "127.0.0.1:1" in str(info.value)
        finally:
            transport.cleanup()
    assert logs
    assert all("s3cr3t" not in json.dumps(entry, default=str) for entry in logs)


def test_cleanup_leaves_no_thread(rabbitmq: str, topic: str, queues: list[str]):
    queues.append(topic)
    before = threading.active_count()
    transport = dovecote.get_transport(URL)
    listener = transport.driver.listen(Target(topic=topic))
    pending = call(transport.driver, topic, "m")
    [msg] = drain(listener, 1)
    msg.reply(result="ok")
    assert answer(pending)["result"] == "ok"
    assert threading.active_count() == before + 1  # the reply receiver
    listener.cleanup()
    transport.cleanup()
    assert threading.active_count() == before


def test_options_are_checked(rabbitmq: str):
    with pytest.raises(dovecote.InvalidTransportURL, match="addressing"):
        dovecote.get_transport("amqp1://127.0.0.1/?addressing=nope")
    with pytest.raises(dovecote.InvalidTransportURL, match="prefetch"):
        dovecote.get_transport("qpid://127.0.0.1/?prefetch=many")
    plain = dovecote.get_transport("qpid://127.0.0.1/", addressing="plain")
    try:
        with pytest.raises(NotImplementedError, match="pool"):
            plain.driver.listen_for_notifications([(Target(topic="n"), "info")], "p")
    finally:
        plain.cleanup()


def test_address_plans() -> None:
    rabbit, plain = plan_named("rabbitmq"), plan_named("qpid")
    assert rabbit.topic("openstack", "compute", None).address == "/exchange/openstack"
    assert rabbit.topic("openstack", "compute", "h1").subject == "compute.h1"
    assert rabbit.fanout("compute").address == "/exchange/compute_fanout"
    assert rabbit.queue("reply_x") == type(rabbit.queue("reply_x"))("/queue", "reply_x")
    assert rabbit.topic_source("openstack", "compute", None).address == "/amq/queue/compute"
    assert plain.topic("openstack", "compute", None).address == "openstack/compute"
    assert plain.topic("openstack", "compute", "h1").address == "openstack/compute.h1"
    assert plain.fanout("compute").address == "multicast/compute"
    assert plain.queue("reply_x").address == "reply_x"
    assert plain.notification("openstack", "n.info").address == "openstack/n.info"
    [source] = plain.notification_source([("openstack", "n.info")], None)
    assert plain.dead_letter_to(source, "n.info")[1].name == "openstack/n.info.dead"
