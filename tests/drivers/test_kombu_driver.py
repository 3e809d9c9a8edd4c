"""The kombu driver against the real RabbitMQ, through the driver contract:
routing, replies, expiry, mandatory calls, notifications (requeue, dead
letters), prefetch, wire format and a driver-level oslo.messaging smoke test."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from _rpc_support import PATIENCE, wait_until
from kombu import Connection, Exchange, Producer, Queue

import dovecote
from dovecote import _wire
from dovecote.drivers.base import IncomingMessage, Listener, PendingReply
from dovecote.drivers.kombu import KombuDriver

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

RAW_URL = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def driver(rabbit_transport: dovecote.Transport) -> KombuDriver:
    assert isinstance(rabbit_transport.driver, KombuDriver)
    return rabbit_transport.driver


@pytest.fixture
def raw(rabbitmq: str) -> Iterator[Any]:
    """A plain kombu connection, to look at the broker behind the driver's back."""
    with Connection(RAW_URL) as conn:
        yield conn


def poll_until(listener: Listener, count: int, within: float = 5.0) -> list[IncomingMessage]:
    """Poll (as the listener actor does) until ``count`` messages came."""
    out: list[IncomingMessage] = []
    deadline = time.monotonic() + within
    while len(out) < count and time.monotonic() < deadline:
        out.extend(listener.poll(0.2, count - len(out)))
    return out


def ready(raw: Any, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare: the broker's own count)."""
    channel = raw.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    finally:
        channel.close()


def get_raw(raw: Any, queue: str) -> Any:
    """Take one message from ``queue`` as the broker holds it."""
    channel = raw.channel()
    try:
        return channel.basic_get(queue=queue, no_ack=True)
    finally:
        channel.close()


def wait_reply(pending: PendingReply, within: float = 5.0) -> Any:
    answer = pending.wait(within)
    assert answer is not None
    return answer


def round_trip(
    driver: KombuDriver, listener: Listener, topic: str, result: Any
) -> tuple[IncomingMessage, Any]:
    """One call to ``topic`` answered with ``result``: (the request, the answer)."""
    pending = PendingReply(_wire.new_id())
    driver.expect_reply(pending)
    driver.send(dovecote.Target(topic=topic), {}, {"method": "call", "args": {}},
                reply=pending, timeout=5)
    (request,) = poll_until(listener, 1)
    request.reply(result=result)
    answer = wait_reply(pending)
    driver.forget(pending)
    return request, answer


# -- routing ---------------------------------------------------------------------
def test_topic_and_server_routing(driver: KombuDriver, topic: str) -> None:
    listener = driver.listen(dovecote.Target(topic=topic, server="s1"))
    other = driver.listen(dovecote.Target(topic=topic, server="s2"))
    try:
        driver.send(dovecote.Target(topic=topic, server="s1"), {"user": "u1"},
                    {"method": "direct", "args": {"n": 1}})
        (got,) = poll_until(listener, 1)
        assert got.message["method"] == "direct"
        assert got.message["args"] == {"n": 1}
        assert got.ctxt == {"user": "u1"}
        assert got.msg_id is None
        assert got.error is None
        assert other.poll(0.3, 10) == []
        driver.send(dovecote.Target(topic=topic), {}, {"method": "shared", "args": {}})
        taken = listener.poll(0.5, 10) + other.poll(0.5, 10)
        assert [m.message["method"] for m in taken] == ["shared"]
    finally:
        listener.cleanup()
        other.cleanup()


def test_competing_consumers_share_a_topic(driver: KombuDriver, topic: str) -> None:
    listeners = [driver.listen(dovecote.Target(topic=topic)) for _ in range(2)]
    try:
        for i in range(20):
            driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {"i": i}})
        seen: list[int] = []
        deadline = time.monotonic() + 5
        while len(seen) < 20 and time.monotonic() < deadline:
            for listener in listeners:
                seen.extend(m.message["args"]["i"] for m in listener.poll(0.1, 5))
        assert sorted(seen) == list(range(20))
    finally:
        for listener in listeners:
            listener.cleanup()


def test_fanout_reaches_every_listener(driver: KombuDriver, topic: str, raw: Any) -> None:
    listeners = [driver.listen(dovecote.Target(topic=topic, server=f"s{i}")) for i in range(2)]
    try:
        names = [q.name for listener in listeners for q in listener.queues  # type: ignore[attr-defined]
                 if "_fanout_" in q.name]
        assert len(names) == 2
        assert all(name.startswith(f"{topic}_fanout_") and len(name.rsplit("_", 1)[1]) == 32
                   for name in names)
        driver.send(dovecote.Target(topic=topic, fanout=True), {}, {"method": "all", "args": {}})
        for listener in listeners:
            (got,) = poll_until(listener, 1)
            assert got.message["method"] == "all"
    finally:
        for listener in listeners:
            listener.cleanup()
    # deleted by their listener on cleanup (not auto-delete, as oslo declares them)
    for name in names:
        channel = raw.channel()
        with pytest.raises(Exception, match="NOT_FOUND"):
            channel.queue_declare(queue=name, passive=True)


def test_a_listener_deletes_its_fanout_queue_without_upsetting_py_amqp(
    driver: KombuDriver, topic: str, raw: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    """Its consumer is cancelled before the queue goes: no broker-side cancel
    arrives while the delete waits for its answer (py-amqp would raise it and
    then log the late answer as "Received method ... during closing channel")."""
    caplog.set_level("DEBUG", logger="amqp")
    for _ in range(10):
        listener = driver.listen(dovecote.Target(topic=topic, server="s1"))
        (name,) = [q.name for q in listener.queues  # type: ignore[attr-defined]
                   if "_fanout_" in q.name]
        driver.send(dovecote.Target(topic=topic, fanout=True), {}, {"method": "m", "args": {}})
        assert len(poll_until(listener, 1)) == 1
        listener.cleanup()
        channel = raw.channel()
        with pytest.raises(Exception, match="NOT_FOUND"):
            channel.queue_declare(queue=name, passive=True)
    noise = [r.getMessage() for r in caplog.records
             if r.name.startswith("amqp") and r.levelno >= 30]
    assert noise == []


def test_target_exchange_overrides_control_exchange(rabbitmq: str, topic: str) -> None:
    with dovecote.get_transport(rabbitmq, control_exchange=f"ctl_{topic}") as transport:
        driver = transport.driver
        listener = driver.listen(dovecote.Target(topic=topic, exchange=f"other_{topic}"))
        driver.send(dovecote.Target(topic=topic), {}, {"method": "ctl", "args": {}})
        driver.send(dovecote.Target(topic=topic, exchange=f"other_{topic}"), {},
                    {"method": "other", "args": {}})
        assert [m.message["method"] for m in poll_until(listener, 1)] == ["other"]
        assert listener.poll(0.2, 10) == []


# -- calls -----------------------------------------------------------------------
def test_call_round_trip_with_heartbeat(driver: KombuDriver, topic: str) -> None:
    listener = driver.listen(dovecote.Target(topic=topic))
    try:
        pending = PendingReply(_wire.new_id())
        driver.expect_reply(pending)
        driver.send(dovecote.Target(topic=topic), {"req": "r1"},
                    {"method": "add", "args": {"a": 1}}, reply=pending, timeout=5,
                    call_monitor_timeout=4)
        (got,) = poll_until(listener, 1)
        assert got.msg_id == pending.msg_id
        assert got.wants_reply
        assert got.call_monitor_timeout == 4
        assert got.message["_reply_q"].startswith("reply_")
        got.heartbeat()
        assert pending.wait(0.3) is None  # a heartbeat is not the answer
        got.reply(result={"sum": 2})
        answer = wait_reply(pending)
        assert answer["result"] == {"sum": 2}
        assert answer["failure"] is None
        assert answer["ending"] is True
        driver.forget(pending)
    finally:
        listener.cleanup()


def test_one_reply_queue_per_driver(driver: KombuDriver, topic: str) -> None:
    listener = driver.listen(dovecote.Target(topic=topic))
    try:
        queues = set()
        for i in range(3):
            request, answer = round_trip(driver, listener, topic, i)
            assert answer["result"] == i
            queues.add(request.message["_reply_q"])
        assert len(queues) == 1
        names = [t.name for t in threading.enumerate() if t.name.startswith("dovecote-reply-")]
        assert len(names) == 1
    finally:
        listener.cleanup()


def test_failure_reply_carries_failure_json(driver: KombuDriver, topic: str) -> None:
    listener = driver.listen(dovecote.Target(topic=topic))
    try:
        pending = PendingReply(_wire.new_id())
        driver.expect_reply(pending)
        driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}},
                    reply=pending, timeout=5)
        (got,) = poll_until(listener, 1)
        got.reply(failure=_wire.serialize_failure(ValueError("bad")))
        failure = json.loads(wait_reply(pending)["failure"])
        assert failure["class"] == "ValueError"
        assert failure["message"] == "bad"
    finally:
        listener.cleanup()


def test_at_least_once_call_to_nobody_fails_fast(driver: KombuDriver, topic: str) -> None:
    pending = PendingReply(_wire.new_id())
    driver.expect_reply(pending)
    started = time.monotonic()
    with pytest.raises(dovecote.MessageUndeliverable) as info:
        driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}},
                    reply=pending, timeout=30, transport_options={"at_least_once": True})
    assert time.monotonic() - started < 5
    assert info.value.routing_key == topic
    assert info.value.exchange == "openstack"
    # without it, a cast to nobody is simply dropped, as AMQP does
    driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})


def test_at_least_once_as_transport_option(rabbitmq: str, topic: str) -> None:
    with (dovecote.get_transport(rabbitmq, at_least_once=True) as transport,
          pytest.raises(dovecote.MessageUndeliverable)):
        transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})


# -- wire format -----------------------------------------------------------------
def declare_like_oslo(raw: Any, topic: str, exchange: str = "openstack") -> None:
    """The topic queue exactly as oslo.messaging declares it by default."""
    Queue(topic, Exchange(exchange, type="topic", durable=False, auto_delete=False),
          routing_key=topic, durable=False, auto_delete=False)(raw.default_channel).declare()


def test_call_wire_format(driver: KombuDriver, topic: str, raw: Any) -> None:
    declare_like_oslo(raw, topic)
    pending = PendingReply(_wire.new_id())
    driver.expect_reply(pending)
    driver.send(dovecote.Target(topic=topic, namespace="ns", version="1.2"), {"user": "u"},
                {"method": "resize", "args": {"size": 3}, "namespace": "ns", "version": "1.2"},
                reply=pending, timeout=7.5, call_monitor_timeout=6)
    message = get_raw(raw, topic)
    assert message is not None
    assert message.properties["content_type"] == "application/json"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["expiration"] == "7500"
    envelope = json.loads(message.body)
    assert set(envelope) == {"oslo.version", "oslo.message"}
    assert envelope["oslo.version"] == "2.0"
    inner = json.loads(envelope["oslo.message"])
    assert inner["method"] == "resize"
    assert inner["args"] == {"size": 3}
    assert inner["namespace"] == "ns"
    assert inner["version"] == "1.2"
    assert inner["_context_user"] == "u"
    assert inner["_msg_id"] == pending.msg_id
    assert inner["_reply_q"].startswith("reply_")
    assert len(inner["_reply_q"]) == len("reply_") + 32
    assert inner["_timeout"] == 6
    assert len(inner["_unique_id"]) == 32


def test_cast_has_no_expiration_and_no_reply_fields(
    driver: KombuDriver, topic: str, raw: Any
) -> None:
    declare_like_oslo(raw, f"{topic}.host1")
    driver.send(dovecote.Target(topic=topic, server="host1"), {}, {"method": "m", "args": {}})
    message = get_raw(raw, f"{topic}.host1")
    assert "expiration" not in message.properties
    inner = json.loads(json.loads(message.body)["oslo.message"])
    assert "_msg_id" not in inner
    assert "_reply_q" not in inner


def test_notification_wire_format(driver: KombuDriver, topic: str, raw: Any) -> None:
    body = {"message_id": _wire.new_id(), "publisher_id": "p", "event_type": "e.x",
            "priority": "INFO", "payload": {"a": 1}, "timestamp": _wire.utc_timestamp()}
    driver.send_notification(dovecote.Target(topic=f"{topic}.info"), {"user": "u"}, body,
                             version=2.0)
    driver.send_notification(dovecote.Target(topic=f"{topic}.info"), {"user": "u"}, body,
                             version=1.0)
    # the sender declared <topic>.<priority> (as oslo does): nothing is lost
    enveloped = get_raw(raw, f"{topic}.info")
    bare = get_raw(raw, f"{topic}.info")
    inner = json.loads(json.loads(enveloped.body)["oslo.message"])
    assert inner["event_type"] == "e.x"
    assert inner["_context_user"] == "u"
    assert json.loads(bare.body) == inner
    assert enveloped.properties["delivery_mode"] == 2


# -- notifications -----------------------------------------------------------------
def notify(driver: KombuDriver, topic: str, priority: str, n: int = 0) -> None:
    driver.send_notification(
        dovecote.Target(topic=f"{topic}.{priority}"), {"user": "u"},
        {"message_id": _wire.new_id(), "publisher_id": "p", "event_type": f"ev.{n}",
         "priority": priority.upper(), "payload": {"n": n},
         "timestamp": _wire.utc_timestamp()},
        version=2.0,
    )


def test_notifications_routing_and_ack(driver: KombuDriver, topic: str, raw: Any) -> None:
    target = dovecote.Target(topic=topic)
    listener = driver.listen_for_notifications([(target, "info"), (target, "error")], None)
    try:
        notify(driver, topic, "info", 1)
        notify(driver, topic, "error", 2)
        notify(driver, topic, "warn", 3)  # nobody listens to warn
        got = poll_until(listener, 2)
        assert sorted(m.message["event_type"] for m in got) == ["ev.1", "ev.2"]
        assert all(m.msg_id is None and m.ctxt == {"user": "u"} for m in got)
        assert listener.poll(0.3, 10) == []
        for message in got:
            message.acknowledge()
        listener.poll(0.1, 1)  # lets the listener settle what was acknowledged
        assert ready(raw, f"{topic}.info") == 0
    finally:
        listener.cleanup()


@pytest.mark.parametrize("prefetch", [1, 8])
def test_acknowledgements_made_while_the_listener_waits_are_sent_at_once(
    rabbitmq: str, topic: str, prefetch: int,
) -> None:
    """With the prefetch window full, the broker sends nothing more until an
    acknowledgement arrives. Acknowledgements made in another thread while the
    listener's thread waits for the broker (holding the connection) wake that
    wait once they are a quarter of the window (not one wake-up each), so the
    window's worth is sent at once, not after the poll times out (which stalled
    a backlog's drain at one prefetch window per poll timeout)."""
    with dovecote.get_transport(rabbitmq, prefetch_count=prefetch) as transport:
        driver = transport.driver
        listener = driver.listen_for_notifications([(dovecote.Target(topic=topic), "info")],
                                                   None)
        try:
            for i in range(1, prefetch + 2):
                notify(driver, topic, "info", i)
            window = poll_until(listener, prefetch)
            assert len(window) == prefetch
            acknowledged = threading.Event()

            def acknowledge_once_waiting() -> None:
                acknowledged.wait(PATIENCE)
                for taken in window:
                    taken.acknowledge()

            threading.Thread(target=acknowledge_once_waiting, daemon=True).start()
            started = time.monotonic()
            acknowledged.set()  # the poll below is entered at once; the ack races it
            second = listener.poll(30.0, 1)
            waited = time.monotonic() - started
            assert [m.message["event_type"] for m in second] == [f"ev.{prefetch + 1}"]
            assert waited < 15.0, f"the acknowledgement waited for the poll's end ({waited:.1f} s)"
            second[0].acknowledge()
        finally:
            listener.cleanup()


def test_pool_members_share_and_bind_every_key(driver: KombuDriver, topic: str) -> None:
    target = dovecote.Target(topic=topic)
    pairs = [(target, "info"), (target, "error")]
    members = [driver.listen_for_notifications(pairs, f"pool_{topic}") for _ in range(2)]
    outsider = driver.listen_for_notifications(pairs, f"other_{topic}")
    try:
        for i in range(10):
            notify(driver, topic, "info" if i % 2 else "error", i)
        seen: list[IncomingMessage] = []
        deadline = time.monotonic() + 5
        while len(seen) < 10 and time.monotonic() < deadline:
            for member in members:
                seen.extend(member.poll(0.1, 10))
        assert sorted(m.message["payload"]["n"] for m in seen) == list(range(10))
        assert len(poll_until(outsider, 10)) == 10
    finally:
        for listener in [*members, outsider]:
            listener.cleanup()


def test_unacknowledged_notification_is_redelivered(driver: KombuDriver, topic: str) -> None:
    target = dovecote.Target(topic=topic)
    listener = driver.listen_for_notifications([(target, "info")], None)
    notify(driver, topic, "info", 7)
    assert len(poll_until(listener, 1)) == 1
    listener.cleanup()  # without acknowledging: the broker keeps it
    again = driver.listen_for_notifications([(target, "info")], None)
    try:
        (got,) = poll_until(again, 1)
        assert got.message["payload"] == {"n": 7}
        got.acknowledge()
    finally:
        again.cleanup()


def test_requeue_counts_redeliveries(driver: KombuDriver, topic: str, raw: Any) -> None:
    target = dovecote.Target(topic=topic)
    listener = driver.listen_for_notifications([(target, "info")], f"pool_{topic}")
    try:
        notify(driver, topic, "info", 1)
        for expected in range(3):
            (got,) = poll_until(listener, 1)
            assert got.redeliveries == expected
            assert got.message["payload"] == {"n": 1}
            got.requeue()
        (got,) = poll_until(listener, 1)
        assert got.redeliveries == 3
        queue = got.dead_letter("gave up after 3")
        assert queue == f"{topic}.info.dead"  # the routing key's, not the pool's
        assert listener.poll(0.3, 10) == []
        dead = get_raw(raw, queue)
        assert dead.properties["application_headers"]["x-dovecote-error"] == "gave up after 3"
        assert json.loads(json.loads(dead.body)["oslo.message"])["payload"] == {"n": 1}
        assert ready(raw, f"pool_{topic}") == 0
    finally:
        listener.cleanup()
        raw.default_channel.queue_delete(f"{topic}.info.dead")


# -- flow control ------------------------------------------------------------------
def test_prefetch_keeps_a_flood_at_the_broker(rabbitmq: str, topic: str, raw: Any) -> None:
    with dovecote.get_transport(rabbitmq, prefetch_count=50) as transport:
        listener = transport.driver.listen(dovecote.Target(topic=topic))
        body = _wire.encode_envelope(_wire.pack_request({}, {"method": "m", "args": {}}))
        producer = Producer(raw.default_channel)
        for _ in range(2000):
            producer.publish(body, exchange="openstack", routing_key=topic,
                             content_type="application/json", content_encoding="utf-8")
        got = listener.poll(1.0, 10)
        assert 1 <= len(got) <= 10
        taken = len(got) + len(poll_until(listener, 10 - len(got)))
        assert taken == 10

        def counts() -> tuple[int, int]:
            rows = subprocess.run(
                ["rabbitmqctl", "list_queues", "-q", "name", "messages_ready",
                 "messages_unacknowledged"], capture_output=True, text=True, check=True,
                timeout=30,
            ).stdout.splitlines()
            (row,) = [r.split("\t") for r in rows if r.split("\t")[0] == topic]
            return int(row[1]), int(row[2])

        # The publishes were not confirmed: wait until the broker holds all 2,000
        # but the 10 taken (RPC requests are acknowledged as they are taken), then
        # look at the split between ready and prefetched.
        assert wait_until(lambda: sum(counts()) == 2000 - taken), counts()
        in_ready, unacked = counts()
        assert in_ready >= 2000 - 10 - 50
        assert unacked <= 50
        assert ready(raw, topic) >= 2000 - 10 - 50
        listener.cleanup()


# -- options, threads, repr -----------------------------------------------------------
def test_url_options_are_parsed_and_keywords_win(rabbitmq: str) -> None:
    url = rabbitmq + "?prefetch_count=7&amqp_durable_queues=true&rabbit_retry_interval=0.5"
    with dovecote.get_transport(url, prefetch_count=9) as transport:
        opts = transport.driver.opts
        assert opts.prefetch_count == 9
        assert opts.amqp_durable_queues is True
        assert opts.rabbit_retry_interval == 0.5
    with structlog.testing.capture_logs() as logs, \
            dovecote.get_transport(rabbitmq + "?prefetch_cont=3"):
        pass
    assert [e["options"] for e in logs if e["event"] == "transport.unknown_options"] == [
        ["prefetch_cont"]]
    with pytest.raises(dovecote.InvalidTransportURL, match="amqp_durable_queues"):
        dovecote.get_transport(rabbitmq + "?amqp_durable_queues=maybe")
    with pytest.raises(dovecote.InvalidTransportURL, match="prefetch_count"):
        dovecote.get_transport(rabbitmq + "?prefetch_count=lots")


def test_durable_option_declares_durable_entities(rabbitmq: str, topic: str, raw: Any) -> None:
    with dovecote.get_transport(rabbitmq, amqp_durable_queues=True,
                                control_exchange=f"durable_{topic}") as transport:
        listener = transport.driver.listen(dovecote.Target(topic=topic))
        # oslo.messaging with amqp_durable_queues=True declares the same thing
        Queue(topic, Exchange(f"durable_{topic}", type="topic", durable=True),
              routing_key=topic, durable=True)(raw.default_channel).declare()
        listener.cleanup()
    raw.default_channel.queue_delete(topic)
    raw.default_channel.exchange_delete(f"durable_{topic}")


def test_cleanup_leaves_no_thread(rabbitmq: str, topic: str) -> None:
    before = {t.ident for t in threading.enumerate()}
    transport = dovecote.get_transport(rabbitmq)
    listener = transport.driver.listen(dovecote.Target(topic=topic))
    pending = PendingReply(_wire.new_id())
    transport.driver.expect_reply(pending)
    transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}},
                          reply=pending, timeout=5)
    assert any(t.name.startswith("dovecote-reply-") for t in threading.enumerate())
    started = time.monotonic()
    transport.cleanup()
    assert time.monotonic() - started < 2
    assert {t.ident for t in threading.enumerate()} <= before
    assert listener.poll(0.1, 1) == []
    with pytest.raises(dovecote.MessageDeliveryFailure, match="cleaned up"):
        transport.driver.send(dovecote.Target(topic=topic), {}, {"method": "m", "args": {}})


def test_kombu_memory_transport(unique: str) -> None:
    """``kombu+memory://``: the same driver over kombu's in-memory transport."""
    with dovecote.get_transport("kombu+memory://") as transport:
        driver = transport.driver
        topic = f"mem_{unique}"
        listener = driver.listen(dovecote.Target(topic=topic))
        pending = PendingReply(_wire.new_id())
        driver.expect_reply(pending)
        driver.send(dovecote.Target(topic=topic), {"u": 1}, {"method": "m", "args": {}},
                    reply=pending, timeout=5)
        (got,) = poll_until(listener, 1)
        assert got.ctxt == {"u": 1}
        got.reply(result="ok")
        assert wait_reply(pending)["result"] == "ok"
        listener.cleanup()


# -- interop with oslo.messaging, at driver level -------------------------------------
def oslo_conf() -> Any:
    """A private oslo.config with the option groups oslo.messaging reads outside
    its transport (metrics, tracing) registered: they live on the global config."""
    import importlib

    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    for module, group in [("oslo_messaging._metrics.client", "oslo_messaging_metrics"),
                          ("oslo_messaging._tracing.client", "oslo_messaging_tracing")]:
        try:
            opts = getattr(importlib.import_module(module), group)
        except (ImportError, AttributeError):
            continue
        conf.register_opts(opts, group=group)
    conf([])
    return conf


@pytest.mark.interop
def test_oslo_client_calls_a_dovecote_listener(driver: KombuDriver, topic: str) -> None:
    import oslo_messaging  # in the test extras: a missing one is a failure
    listener = driver.listen(dovecote.Target(topic=topic, server="srv"))
    conf = oslo_conf()
    oslo_transport = oslo_messaging.get_rpc_transport(conf, url=RAW_URL.replace("amqp", "rabbit"))
    try:
        client = oslo_messaging.get_rpc_client(
            oslo_transport, oslo_messaging.Target(topic=topic), timeout=10)
        client.cast({"user": "oslo"}, "ping", n=1)
        (cast,) = poll_until(listener, 1)
        assert cast.message["method"] == "ping"
        assert cast.message["args"] == {"n": 1}
        assert cast.ctxt["user"] == "oslo"
        assert cast.msg_id is None

        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["value"] = client.prepare(server="srv", call_monitor_timeout=5).call(
                    {}, "add", a=1, b=2)
            except Exception as exc:
                result["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        (request,) = poll_until(listener, 1, within=10)
        assert request.message["method"] == "add"
        # heartbeats only when the caller set a call-monitor timeout: oslo.messaging's
        # waiter cannot take one otherwise
        assert request.call_monitor_timeout == 5
        request.heartbeat()
        request.reply(result=request.message["args"]["a"] + request.message["args"]["b"])
        caller.join(10)
        assert result == {"value": 3}
    finally:
        listener.cleanup()
        oslo_transport.cleanup()


@pytest.mark.interop
def test_dovecote_call_reaches_an_oslo_server(driver: KombuDriver, topic: str) -> None:
    import oslo_messaging  # in the test extras: a missing one is a failure
    class Endpoint:
        def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
            return {"value": value, "user": ctxt.get("user")}

    conf = oslo_conf()
    oslo_transport = oslo_messaging.get_rpc_transport(conf, url=RAW_URL.replace("amqp", "rabbit"))
    server = oslo_messaging.get_rpc_server(
        oslo_transport, oslo_messaging.Target(topic=topic, server="oslo"), [Endpoint()])
    server.start()
    try:
        pending = PendingReply(_wire.new_id())
        driver.expect_reply(pending)
        driver.send(dovecote.Target(topic=topic, server="oslo"), {"user": "dc"},
                    {"method": "echo", "args": {"value": [1, 2]}}, reply=pending, timeout=10)
        answer = wait_reply(pending, 10)
        assert answer["failure"] is None
        assert answer["result"] == {"value": [1, 2], "user": "dc"}
    finally:
        server.stop()
        server.wait()
        oslo_transport.cleanup()
