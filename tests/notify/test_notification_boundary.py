"""The boundary for notifications on every transport: a serializer, a filter
rule or an endpoint (plain or actor) that raises, a hostile redelivery count,
bodies nested too deeply or too large: each notification is handled,
requeued or parked with its reason; none is lost, none blocks the queue, no
actor and no thread dies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import structlog
from _rpc_support import PATIENCE, Injector, delete_queues, envelope, wait_until
from conftest import AMQP1_URL
from test_notifications import Endpoint, Recorder, Seen, listening, notification_queues

import dovecote
from dovecote import Target, _wire

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_deaths")]


@pytest.fixture(autouse=True)
def _forget_queues(request: pytest.FixtureRequest, topic: str) -> Iterator[None]:
    url = (request.getfixturevalue("transport_url")
           if "transport_url" in request.fixturenames else AMQP1_URL)
    yield
    delete_queues(url, *notification_queues(topic))


def _notification(payload: Any, *, priority: str = "INFO", **extra: Any) -> str:
    return envelope({"message_id": _wire.new_id(), "publisher_id": "p", "event_type": "e",
                     "priority": priority, "payload": payload,
                     "timestamp": "2026-01-01 00:00:00.000000", **extra})


def _parked(transport: dovecote.Transport, topic: str) -> list[dovecote.DeadLetter]:
    return dovecote.take_dead_letters(transport, topic, "info", timeout=0.3)


class Picky(dovecote.NoOpSerializer):
    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        if ctxt.get("refuse"):
            raise KeyError("project_id")
        return ctxt

    def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        if entity == "old object":
            raise LookupError("Instance 9.9 cannot be read")
        return entity


class InfoActor(pykka.ThreadingActor):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def info(self, *args: Any) -> None:
        self.recorder.add(Seen("info", *args))


@pytest.mark.parametrize("as_actor", [False, True], ids=["plain", "actor"])
@pytest.mark.parametrize("allow_requeue", [False, True], ids=["park", "requeue"])
def test_serializer_failures_are_requeued_or_parked_never_lost(
    transport: dovecote.Transport, topic: str, as_actor: bool, allow_requeue: bool,
) -> None:
    recorder = Recorder()
    actor = InfoActor.start(recorder) if as_actor else None
    endpoint = actor if actor is not None else Endpoint(recorder)
    try:
        with structlog.testing.capture_logs() as logs, \
                listening(transport, [Target(topic=topic)], [endpoint], serializer=Picky(),
                          allow_requeue=allow_requeue, max_redeliveries=1) as listener, \
                Injector(transport) as injector:
            injector.put(f"{topic}.info", _notification("old object"))
            injector.put(f"{topic}.info", _notification(1, _context_refuse=True))
            injector.put(f"{topic}.info", _notification(2))
            assert [s.payload for s in recorder.wait_for(1)] == [2]
            parked = _wait_parked(logs, 2)
            assert all(r["alive"] for r in listener.actors())
        if actor is not None:
            assert actor.is_alive()
    finally:
        if actor is not None:
            actor.stop()
    reasons = sorted(e["reason"] for e in parked)
    assert "could not deserialize it" in reasons[0]
    assert "KeyError" in reasons[0]
    assert "LookupError" in reasons[1]
    requeued = [e for e in logs if e["event"] == "notification.requeued"]
    assert len(requeued) == (2 if allow_requeue else 0)  # once each, then parked
    dead = _parked(transport, topic)
    assert len(dead) == 2
    assert all("could not deserialize it" in (d.reason or "") for d in dead)


def _wait_parked(logs: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The ``notification.dead_lettered`` events, once there are ``count``."""

    def parked() -> list[dict[str, Any]]:
        return [e for e in logs if e["event"] == "notification.dead_lettered"]

    assert wait_until(lambda: len(parked()) >= count), parked()
    return parked()


class Explosive:
    def match(self, *args: Any) -> bool:
        raise RuntimeError("the rule itself is broken")


class FilteredEndpoint(Endpoint):
    filter_rule = Explosive()


def test_a_filter_rule_that_raises_parks_the_notification(
    transport: dovecote.Transport, topic: str,
) -> None:
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [FilteredEndpoint(), Endpoint()]):
        dovecote.Notifier(transport, publisher_id="p", topics=[topic]).info({}, "e", 1)
        parked = _wait_parked(logs, 1)
    assert "filter_rule raised" in parked[0]["reason"]
    failed = [e for e in logs if e["event"] == "dispatch.failed"]
    assert [e.get("stage") for e in failed] == ["filter"]


def test_batch_parks_only_the_entries_it_cannot_read(
    transport: dovecote.Transport, topic: str,
) -> None:
    got = Recorder()

    class Batch:
        def info(self, messages: list[dict[str, Any]]) -> None:
            got.add(sorted(m["payload"] for m in messages))

    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [Batch()], batch=True, batch_size=3,
                      batch_timeout=5.0, serializer=Picky()), \
            Injector(transport) as injector:
        for payload in (1, "old object", 3):
            injector.put(f"{topic}.info", _notification(payload))
        assert got.wait_for(1) == [[1, 3]]
        _wait_parked(logs, 1)
    assert [d.message["payload"] for d in _parked(transport, topic)] == ["old object"]


@pytest.mark.parametrize("count", [-1_000_000, "-5", 2**80, "lots", None, 1.5])
def test_a_hostile_redelivery_count_cannot_make_a_poison_loop(
    transport: dovecote.Transport, topic: str, count: Any,
) -> None:
    """A negative or unreadable count is taken as 0: a poison notification is
    still parked after ``max_redeliveries`` requeues."""

    class Poison:
        def info(self, *args: Any) -> None:
            raise ValueError("poison")

    headers = {"x-dovecote-redeliveries": count}
    if count is not None and not isinstance(count, (int, str)):
        headers = {"x-dovecote-redeliveries": str(count)}
    if isinstance(count, int) and abs(count) > 2**62:
        headers = {"x-dovecote-redeliveries": str(count)}  # wider than a broker table int
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [Poison()], allow_requeue=True,
                      max_redeliveries=2), \
            Injector(transport) as injector:
        injector.put(f"{topic}.info", _notification("x"), headers)
        parked = _wait_parked(logs, 1)
    requeued = [e["redeliveries"] for e in logs if e["event"] == "notification.requeued"]
    assert len(requeued) <= 2
    assert "after" in parked[0]["reason"]


@pytest.mark.parametrize("body", ["deep", "oversized"])
def test_bodies_beyond_the_bounds_are_parked_with_the_reason(
    transport: dovecote.Transport, topic: str, body: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = Endpoint()
    if body == "deep":
        poison = '{"priority": "INFO", "payload": ' + "[" * 5000 + "]" * 5000 + "}"
        reason = "nested too deeply"
    else:
        monkeypatch.setattr(_wire, "MAX_BODY_SIZE", 4096)
        poison = _notification("x" * 8192)
        reason = "over the 4096-byte limit"
    with structlog.testing.capture_logs() as logs, \
            listening(transport, [Target(topic=topic)], [endpoint]), \
            Injector(transport) as injector:
        injector.put(f"{topic}.info", poison)
        injector.put(f"{topic}.info", _notification("after"))
        assert [s.payload for s in endpoint.recorder.wait_for(1)] == ["after"]
        parked = _wait_parked(logs, 1)
    assert reason in parked[0]["reason"]
    [dead] = _parked(transport, topic)
    assert reason in (dead.reason or "")


def test_amqp1_values_json_cannot_hold_are_parked(rabbitmq: str, topic: str) -> None:
    """An AMQP 1.0 map holding a described value is a legal body: it is parked,
    sent back as it came, and the notifications behind it are handled."""
    from proton import Described, symbol

    transport = dovecote.get_transport(AMQP1_URL)
    endpoint = Endpoint()
    try:
        with structlog.testing.capture_logs() as logs, \
                listening(transport, [Target(topic=topic)], [endpoint]), \
                Injector(transport) as injector:
            injector.put(f"{topic}.info", {"priority": "INFO",
                                           "payload": Described(symbol("x:d"), 1)})
            injector.put(f"{topic}.info", _notification("after"))
            assert [s.payload for s in endpoint.recorder.wait_for(1, PATIENCE)] == ["after"]
            parked = _wait_parked(logs, 1)
        assert "JSON cannot represent" in parked[0]["reason"]
        [dead] = _parked(transport, topic)
        assert dead.error is not None
    finally:
        transport.cleanup()


def test_rabbit_never_inflates_a_compressed_body(rabbitmq: str, topic: str) -> None:
    """kombu would inflate a body whose ``compression`` header names a codec before
    any size check (a small body, gigabytes inflated). The listener takes it as it
    came: parked as not UTF-8 (inflated, it would be over the size limit), with
    its header, and the notifications behind it are handled."""
    import zlib

    import kombu
    from conftest import RABBIT_URL

    inflated = _notification("zeros").encode() + b" " * (40 * 1024 * 1024)  # valid JSON
    transport = dovecote.get_transport(RABBIT_URL)
    endpoint = Endpoint()
    try:
        with structlog.testing.capture_logs() as logs, \
                listening(transport, [Target(topic=topic)], [endpoint]), \
                kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
            producer = kombu.Producer(conn.default_channel)
            producer.publish(zlib.compress(inflated), exchange="", routing_key=f"{topic}.info",
                             content_type="application/json", content_encoding="binary",
                             headers={"compression": "application/x-gzip"})
            del inflated
            producer.publish(_notification("after"), exchange="", routing_key=f"{topic}.info",
                             content_type="application/json", content_encoding="utf-8")
            assert [s.payload for s in endpoint.recorder.wait_for(1)] == ["after"]
            parked = _wait_parked(logs, 1)
            assert "UTF-8" in parked[0]["reason"]
            channel = conn.channel()
            dead = channel.basic_get(f"{topic}.info.dead", no_ack=True)
            assert dead is not None
            assert dead.headers["compression"] == "application/x-gzip"
            assert len(dead.body) < 1024 * 1024  # as it came
    finally:
        transport.cleanup()


def test_a_notifier_serializer_that_raises_raises_to_its_caller_only(
    transport: dovecote.Transport, topic: str,
) -> None:
    class Refusing(dovecote.NoOpSerializer):
        def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
            if entity == "unsendable":
                raise RuntimeError("cannot send that")
            return entity

    endpoint = Endpoint()
    with listening(transport, [Target(topic=topic)], [endpoint]):
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic],
                                     serializer=Refusing())
        with pytest.raises(RuntimeError, match="cannot send that"):
            notifier.info({}, "e", "unsendable")
        notifier.info({}, "e", "fine")
        assert [s.payload for s in endpoint.recorder.wait_for(1)] == ["fine"]
