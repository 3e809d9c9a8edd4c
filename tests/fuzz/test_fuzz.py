"""Property-based fuzzing (hypothesis) of what any peer on the bus can send, on
every transport: raw bodies injected straight into the broker (the memory
broker's ``put``, a raw kombu producer, a raw Proton sender).

After every batch: each call whose reply address can be read is answered, a
normal call is answered, every good notification is handled exactly once,
every bad one is parked with its reason, no actor died; at the end no thread
died and ``stop()``/``wait()`` complete.

CI runs a modest number of examples per test (200 on ``memory://``, 100 on a
broker; about a minute in all). For a long local run::

    DOVECOTE_FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Any

import pykka
import pytest
import structlog
from _fuzz_strategies import (
    ABSENT,
    ANSWERABLE_WRAPPINGS,
    ANY_VALUE,
    JSON,
    RAW_BODIES,
    WRAPPINGS,
    amqp_properties,
    amqp_values,
    encode,
    field,
    headers,
)
from _hostile_amqp import HostilePublisher
from _rpc_support import (
    PATIENCE,
    Injector,
    delete_queues,
    envelope,
    kind_of,
    reply_queue_of,
    running,
    serve,
    wait_until,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import dovecote
from dovecote import Target, _wire
from dovecote.drivers.base import PendingReply
from dovecote.notify._listener import PRIORITIES

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("no_deaths")]


def _examples(transport: dovecote.Transport) -> int:
    wanted = int(os.environ.get("DOVECOTE_FUZZ_EXAMPLES", "0"))
    return wanted or (200 if kind_of(transport) == "memory" else 100)


def _settings(transport: dovecote.Transport) -> settings:
    # On CI a failure is reported as found, unshrunk: shrinking a broker test can
    # take longer than the whole suite may.
    phases = [p for p in Phase if not (p is Phase.shrink and os.environ.get("CI") == "true")]
    return settings(max_examples=_examples(transport), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True, phases=phases)


def _bodies(transport: dovecote.Transport) -> st.SearchStrategy[Any]:
    """Raw bodies this transport can carry (AMQP 1.0 values on ``amqp1://``)."""
    return RAW_BODIES | amqp_values() if kind_of(transport) == "amqp1" else RAW_BODIES


# -- RPC ----------------------------------------------------------------------------------


class Api:
    target = Target(version="1.3")

    def echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value


class ActorApi(pykka.ThreadingActor):
    target = Target(version="1.3")

    def actor_echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value


REQUEST = st.fixed_dictionaries({
    "method": field(st.sampled_from(["echo", "actor_echo", "nope"])),
    "args": field(st.fixed_dictionaries({"value": ANY_VALUE})),
    "namespace": field(st.none()),
    "version": field(st.sampled_from(["1.0", "1.3", "2.0", "one"])),
    "_timeout": field(st.sampled_from([None, 1, 2.5, 1e12, 1e-9, -1, "soon"])),
    "_context_user": field(JSON),
})


@st.composite
def rpc_items(draw: st.DrawFn, bodies: st.SearchStrategy[Any]) -> tuple[str, Any]:
    """One thing to put on the bus: a call whose reply address is readable (it
    must be answered), any other request, a raw body, or junk on the reply queue."""
    kind = draw(st.sampled_from(["call", "request", "raw", "reply_junk"]))
    if kind == "call":
        return kind, (draw(REQUEST), draw(ANSWERABLE_WRAPPINGS))
    if kind == "request":
        request = draw(REQUEST)
        for key in ("_msg_id", "_reply_q", "_unique_id"):
            request[key] = draw(field(st.sampled_from(["dup-1", "dup-2"])))
        return kind, encode(request, draw(WRAPPINGS))
    return kind, draw(bodies)


def test_rpc_server_survives_any_request(transport: dovecote.Transport, topic: str) -> None:
    actor = ActorApi.start()
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    reply_q = reply_queue_of(transport)
    driver = transport.driver
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Api(), actor],
                   max_workers=2) as server, Injector(transport) as injector:
            actors_before = len(server.actors())

            @_settings(transport)
            @given(items=st.lists(rpc_items(_bodies(transport)), min_size=1, max_size=6))
            def check(items: list[tuple[str, Any]]) -> None:
                calls: list[PendingReply] = []
                for kind, item in items:
                    if kind == "call":
                        request, wrapping = item
                        pending = PendingReply(_wire.new_id(), timeout=PATIENCE)
                        driver.expect_reply(pending)
                        calls.append(pending)
                        body = encode({**request, "_msg_id": pending.msg_id, "_reply_q": reply_q,
                                       "_unique_id": _wire.new_id()}, wrapping)
                        injector.put(topic, body)
                    elif kind == "reply_junk":
                        injector.put_reply(reply_q, item)
                    else:
                        injector.put(topic, item)
                try:
                    for pending in calls:
                        reply = pending.wait()  # MessagingTimeout: a call went unanswered
                        assert reply is not None
                        assert reply.get("ending") is True
                finally:
                    for pending in calls:
                        driver.forget(pending)
                assert client.call({}, "echo", value="next") == "next"
                records = server.actors()
                assert all(record["alive"] for record in records), records
                assert len(records) == actors_before

            check()
            assert client.call({}, "actor_echo", value="still here") == "still here"
    finally:
        actor.stop()
        delete_queues(transport, topic, f"{topic}.s1")
        if kind_of(transport) == "redis":  # replies to "dup-*" made those lists there
            delete_queues(transport, "dup-1", "dup-2")


# -- notifications ----------------------------------------------------------------------


PRIORITY_NAMES = ["INFO", "info", "WARN", "WARNING", "ERROR", "AUDIT", "DEBUG", "CRITICAL",
                  "SAMPLE"]


class Meter:
    """Records the message id of every notification, whatever its priority."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._lock = threading.Lock()

    def _record(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                metadata: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append(metadata["message_id"])

    audit = debug = info = warn = error = critical = sample = _record


GOOD_NOTIFICATION = st.fixed_dictionaries({
    "publisher_id": JSON, "event_type": JSON, "payload": JSON, "timestamp": JSON,
    "priority": st.sampled_from(PRIORITY_NAMES), "_context_user": JSON,
})
#: Notifications that can never reach an endpoint: no known priority.
BAD_NOTIFICATION = st.fixed_dictionaries({
    "message_id": field(st.text(max_size=8)), "payload": field(JSON),
    "priority": field(st.sampled_from(["", "LOUD", "information"])),
})


@st.composite
def notification_items(draw: st.DrawFn, bodies: st.SearchStrategy[Any]) -> tuple[str, Any]:
    """A good notification (a dict to encode, with a fresh id), or a bad body."""
    kind = draw(st.sampled_from(["good", "bad", "raw"]))
    if kind == "good":
        return kind, (draw(GOOD_NOTIFICATION), draw(st.sampled_from(["v2", "bare"])))
    if kind == "bad":
        bad = draw(BAD_NOTIFICATION)
        if bad["priority"] is not ABSENT and bad["priority"] in PRIORITY_NAMES:
            bad["priority"] = "LOUD"
        return kind, encode(bad, draw(WRAPPINGS))
    return kind, draw(bodies)


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_notification_listener_parks_what_it_cannot_handle(
    transport: dovecote.Transport, topic: str, batched: bool,
) -> None:
    meter = Meter()
    targets = [Target(topic=topic)]
    with structlog.testing.capture_logs() as logs:
        if batched:
            listener = dovecote.get_batch_notification_listener(
                transport, targets, [BatchMeter(meter)], allow_requeue=True, batch_size=4,
                batch_timeout=0.01)  # a partial batch is not held long: 100-200 examples
        else:
            listener = dovecote.get_notification_listener(
                transport, targets, [meter], allow_requeue=True)
        expected: collections.Counter[str] = collections.Counter()
        bad_total = 0
        try:
            with running(listener) as server, Injector(transport) as injector:

                @_settings(transport)
                @given(items=st.lists(notification_items(_bodies(transport)), min_size=1,
                                      max_size=6),
                       extra=headers())
                def check(items: list[tuple[str, Any]], extra: dict[str, Any]) -> None:
                    nonlocal bad_total
                    for kind, item in items:
                        if kind == "good":
                            notification, wrapping = item
                            message_id = _wire.new_id()
                            expected[message_id] += 1
                            injector.put(f"{topic}.info", encode(
                                {**notification, "message_id": message_id}, wrapping), extra)
                        else:
                            bad_total += 1
                            injector.put(f"{topic}.info", item, extra)

                    def settled() -> bool:
                        parked = [e for e in logs if e["event"] == "notification.dead_lettered"]
                        return (len(meter.seen) >= sum(expected.values())
                                and len(parked) >= bad_total)

                    if not wait_until(settled):
                        missing = set(expected) - set(meter.seen)
                        parked = [e for e in logs if e["event"] == "notification.dead_lettered"]
                        events = collections.Counter(e["event"] for e in logs)
                        pytest.fail(f"not settled: {len(missing)} good not handled, "
                                    f"{len(parked)} of {bad_total} bad parked; events {events}")
                    assert collections.Counter(meter.seen) == expected  # each exactly once
                    assert all(record["alive"] for record in server.actors())

                check()
            parked = [e for e in logs if e["event"] == "notification.dead_lettered"]
            assert len(parked) == bad_total
            assert all(e["reason"] for e in parked)
            requeued = [e for e in logs if e["event"] == "notification.requeued"]
            assert not requeued, "malformed notifications are parked at once, never requeued"
        finally:
            dead = dovecote.take_dead_letters(transport, topic, "info", timeout=0.5)
            delete_queues(transport, f"{topic}.info.dead",
                          *(f"{topic}.{priority}" for priority in PRIORITIES))
    assert len(dead) == bad_total
    assert all(letter.reason for letter in dead)


class BatchMeter:
    """A batch endpoint that records into a :class:`Meter`."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def _record(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.meter._record(None, None, None, None, message["metadata"])

    audit = debug = info = warn = error = critical = sample = _record


def test_hostile_values_are_never_echoed_whole(transport: dovecote.Transport, topic: str) -> None:
    """A failure reply says what was wrong without echoing the payload."""
    secret = "s3cr3t-" + "x" * 5000
    reply_q = reply_queue_of(transport)
    pending = PendingReply(_wire.new_id(), timeout=PATIENCE)
    transport.driver.expect_reply(pending)
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Api()]), \
                Injector(transport) as injector:
            injector.put(topic, encode({
                "method": secret, "args": {"value": secret}, "version": secret,
                "_msg_id": pending.msg_id, "_reply_q": reply_q, "_unique_id": _wire.new_id(),
            }, "v2"))
            reply = pending.wait()
    finally:
        transport.driver.forget(pending)
        delete_queues(transport, topic, f"{topic}.s1")
    assert reply is not None
    assert reply["failure"]
    assert len(reply["failure"]) < 2000


# -- AMQP properties: what py-amqp reads before dovecote sees anything ------------------


@pytest.mark.broker
@pytest.mark.parametrize("kind", ["rabbit", "amqp1"])
def test_servers_survive_any_amqp_properties(kind: str, rabbitmq: str, topic: str) -> None:
    """Any content header an AMQP 0-9-1 client can write (timestamps over 64 bits,
    tables nested past the recursion limit, text that is not UTF-8, any
    ``content_encoding``), sent to an RPC server and a notification listener
    listening over either protocol: every call is answered, every notification
    handled or parked, and a normal call still works; no listener reconnects."""
    from conftest import AMQP1_URL, RABBIT_URL

    transport = dovecote.get_transport(RABBIT_URL if kind == "rabbit" else AMQP1_URL)
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    reply_q = reply_queue_of(transport)
    meter = Meter()
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=f"{topic}_n")], [meter], allow_requeue=True)
    sent = 0
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]), \
                running(listener), HostilePublisher() as publisher:

            @_settings(transport)
            @given(properties=amqp_properties(), what=st.sampled_from(["call", "notification"]))
            def check(properties: bytes, what: str) -> None:
                nonlocal sent
                if what == "notification":
                    sent += 1
                    body = envelope({"message_id": _wire.new_id(), "priority": "INFO",
                                     "event_type": "fuzz", "payload": sent, "publisher_id": "p"})
                    publisher.publish(f"{topic}_n.info", body.encode(), properties)

                    def settled() -> bool:
                        parked = [e for e in logs if e["event"] == "notification.dead_lettered"]
                        return len(meter.seen) + len(parked) >= sent

                    assert wait_until(settled), "a notification was neither handled nor parked"
                    return
                pending = PendingReply(_wire.new_id(), timeout=PATIENCE)
                driver.expect_reply(pending)
                try:
                    body = envelope({"method": "echo", "args": {"value": 1},
                                     "_msg_id": pending.msg_id, "_reply_q": reply_q,
                                     "_unique_id": _wire.new_id()})
                    publisher.publish(topic, body.encode(), properties)
                    try:
                        assert pending.wait() is not None
                    except dovecote.MessagingTimeout:
                        noted = [(e["event"], e.get("error") or e.get("reason"))
                                 for e in logs if e["log_level"] in {"warning", "error"}]
                        pytest.fail(f"a call went unanswered; warnings: {noted[-8:]}")
                finally:
                    driver.forget(pending)
                assert client.call({}, "echo", value="next") == "next"

            driver = transport.driver
            check()
    finally:
        transport.cleanup()
        delete_queues(RABBIT_URL, topic, f"{topic}.s1", f"{topic}_n.info", f"{topic}_n.info.dead",
                      *(f"{topic}_n.{priority}" for priority in PRIORITIES))
    lost = [e for e in logs if e["event"] in {"listener.connection_lost", "reply.connection_lost"}]
    assert not lost, lost
