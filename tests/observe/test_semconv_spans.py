"""Span names and attributes by OpenTelemetry's semantic conventions (messaging
spans, RabbitMQ's, RPC spans; see the module docstring of dovecote.tracing),
on memory://, RabbitMQ and amqp1:// against the same RabbitMQ, with the SDK's
in-memory exporter: fanout and server-directed casts, namespaced methods, a
notifier with two topics, call_async, and the message id that leads from a
span to the server's events. test_tracing.py covers the plain call, cast and
notification, failures and batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _rpc_support import PATIENCE, Recorder, delete_queues, running
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from test_tracing import Exporter, Worker, child_of, provider, serve, spans

import dovecote
from dovecote import Target, tracing
from dovecote.observe import _probes

pytestmark = pytest.mark.timeout(60)
__all__ = ["provider", "spans"]  # the fixtures, shared with test_tracing.py


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.broker),
                        pytest.param("amqp1", marks=pytest.mark.broker)])
def bus(request: pytest.FixtureRequest, unique: str, topic: str) -> Iterator[Any]:
    """A transport on each driver (amqp1:// talks to the test RabbitMQ)."""
    if request.param == "memory":
        url = f"memory://{unique}"
    else:
        from conftest import AMQP1_URL

        rabbit = request.getfixturevalue("rabbitmq")
        url = rabbit if request.param == "rabbit" else AMQP1_URL
    transport = dovecote.get_transport(url)
    yield transport
    delete_queues(transport, topic, f"{topic}.s1", f"{topic}.info", f"{topic}2.info")
    transport.cleanup()


def on_rabbitmq(transport: Any) -> bool:
    return transport.url.scheme != "memory"


def test_fanout_and_server_casts_name_exchange_routing_key_and_queue(
        bus: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    worker = Worker(provider)
    with serve(bus, topic, [worker]):
        client = dovecote.get_rpc_client(bus, Target(topic=topic))
        client.prepare(fanout=True).cast({}, "work", value=1)
        worker.seen.get(timeout=PATIENCE)
        client.prepare(server="s1").cast({}, "work", value=2)
        worker.seen.get(timeout=PATIENCE)
    system = "rabbitmq" if on_rabbitmq(bus) else "memory"
    # amqp1:// sends a fanout with no subject; the others with the topic as routing key.
    fanout = f"{topic}_fanout" if bus.url.scheme == "amqp1" else f"{topic}_fanout:{topic}"
    sent = spans.one(f"send {fanout}")
    processed = spans.one(f"process {fanout}")  # named by the template, not the queue
    assert sent.kind is SpanKind.PRODUCER
    assert processed.kind is SpanKind.CONSUMER
    assert child_of(processed, sent)
    assert sent.attributes["messaging.system"] == processed.attributes[
        "messaging.system"] == system
    assert sent.attributes["messaging.destination.name"] == fanout
    attrs = processed.attributes
    assert attrs["messaging.destination.template"] == fanout
    assert attrs["messaging.destination.anonymous"] is True
    assert attrs["messaging.destination.temporary"] is True
    own_queue = attrs["messaging.destination.name"].removeprefix(f"{fanout}:")
    assert own_queue.startswith(f"{topic}_fanout_")  # the listener's own queue
    assert attrs["messaging.message.id"] == sent.attributes["messaging.message.id"]

    direct = spans.one(f"send openstack:{topic}.s1")
    reached = spans.one(f"process openstack:{topic}.s1")
    assert child_of(reached, direct)
    for span in (direct, reached):
        assert span.attributes["messaging.destination.name"] == f"openstack:{topic}.s1"
        assert span.attributes["rpc.method"] == f"{topic}/work"
        assert "messaging.destination.template" not in span.attributes
        key = span.attributes.get("messaging.rabbitmq.destination.routing_key")
        assert key == (f"{topic}.s1" if on_rabbitmq(bus) else None)


def test_a_spans_message_id_finds_the_servers_events(
        bus: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    """From a trace to ``dovecote events --msg-id``: the id both spans carry is
    the one the server's events are kept under, for a call and a notification."""
    seen = Recorder()

    class Listener:
        def info(self, *args: Any) -> None:
            seen.add(args)

    listener = dovecote.get_notification_listener(bus, [Target(topic=topic)], [Listener()])
    with serve(bus, topic, [Worker(provider)]) as server, running(listener):
        dovecote.get_rpc_client(bus, Target(topic=topic), timeout=10).call({}, "work", value=1)
        dovecote.Notifier(bus, "p", topics=[topic]).info({}, "thing.done", {})
        seen.wait_for(1)
        call, answered = spans.call(f"{topic}/work")
        msg_id = call.attributes["messaging.message.id"]
        assert answered.attributes["messaging.message.id"] == msg_id
        assert {e["event"] for e in server.events(msg_id=msg_id)} >= {"dispatch.ok"}
        notified = spans.one(f"process openstack:{topic}.info")
        message_id = notified.attributes["messaging.message.id"]
        assert spans.one(f"send openstack:{topic}.info").attributes[
            "messaging.message.id"] == message_id
        assert listener.events(msg_id=message_id)


class Namespaced:
    target = Target(namespace="inventory", version="1.1")

    def take(self, ctxt: dict[str, Any], item: str) -> str:
        return item


def test_a_namespaced_method_and_call_async(
        bus: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    with serve(bus, topic, [Namespaced()]):
        client = dovecote.get_rpc_client(
            bus, Target(topic=topic, namespace="inventory", version="1.1"), timeout=10)
        assert client.call({}, "take", item="apple") == "apple"
        future = client.call_async({}, "take", item="pear")
        assert future.get(timeout=10) == "pear"
        (first_client, second_client) = spans.span(f"{topic}/inventory.take", 2,
                                                   SpanKind.CLIENT)
        servers = spans.span(f"{topic}/inventory.take", 2, SpanKind.SERVER)
    for client_span in (first_client, second_client):
        assert client_span.attributes["rpc.method"] == f"{topic}/inventory.take"
        assert client_span.attributes["rpc.system.name"] == "oslo_messaging"
        assert client_span.attributes["dovecote.outcome"] == "ok"
    assert {s.attributes["rpc.method"] for s in servers} == {f"{topic}/inventory.take"}
    assert {s.parent.span_id for s in servers} == {
        first_client.context.span_id, second_client.context.span_id}
    for span in (first_client, *servers):  # deprecated attributes are not sent
        assert not {"rpc.system", "rpc.service"} & set(span.attributes)


def test_a_notifier_with_two_topics_is_one_send_to_no_one_destination(
        bus: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    seen = Recorder()

    class Listener:
        def info(self, *args: Any) -> None:
            seen.add(args)

    listener = dovecote.get_notification_listener(
        bus, [Target(topic=topic), Target(topic=f"{topic}2")], [Listener()])
    with running(listener):
        dovecote.Notifier(bus, "p", topics=[topic, f"{topic}2"]).info({}, "thing.done", {})
        seen.wait_for(2)
        first = spans.one(f"process openstack:{topic}.info")
        second = spans.one(f"process openstack:{topic}2.info")
    sent = spans.one("send")
    assert sent.kind is SpanKind.PRODUCER
    assert "messaging.destination.name" not in sent.attributes
    assert sent.attributes["dovecote.event_type"] == "thing.done"
    assert child_of(first, sent)
    assert child_of(second, sent)


# -- names, without a transport --------------------------------------------------------------
def test_destination_names_follow_rabbitmqs_convention() -> None:
    """``<exchange>:<routing key>:<queue>``, empty parts left out, the queue
    left out when it is the routing key; ``amq.default`` when nothing is known."""
    name = tracing._destination
    assert name("openstack", "compute") == "openstack:compute"
    assert name("openstack", "compute", "compute") == "openstack:compute"
    assert name("openstack", "notifications.info", "pool") == "openstack:notifications.info:pool"
    assert name("", "notifications.info", "notifications.info") == "notifications.info"
    assert name("c_fanout", "", "c_fanout_1a") == "c_fanout:c_fanout_1a"
    assert name("", "") == "amq.default"
    assert len(name("x" * 300, "y")) == 255  # bounded like every name a span carries


def test_a_dispatch_with_nothing_known_of_its_destination(
        provider: TracerProvider, spans: Exporter) -> None:
    """A message no listener described (``dovecote.testing``'s direct calls, a
    hand-made probe call): no messaging system, no destination, a bare name."""
    probe = tracing._probe
    assert probe is not None
    cast = probe.dispatch_started(None, "rpc", "work", (_probes.Delivery({}, topic="t"),))
    probe.dispatch_finished(cast, _probes.Dispatched(None, "rpc", "work", "ok", 0))
    span = spans.one("process")
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes["rpc.method"] == "t/work"
    assert "messaging.system" not in span.attributes
    assert "messaging.destination.name" not in span.attributes


def test_only_probes_that_ask_get_the_deliveries() -> None:
    """What a message tells is read only for a probe that wants it (tracing),
    not for every probe (metrics, ``wait_for``): the hot path stays cheap."""

    class Taken:
        def __init__(self) -> None:
            self.message = {"namespace": "ns", "event_type": 3}  # not text: dropped
            self.msg_id = "m1"  # a call: its sender waits
            self.source = _probes.Source("memory", "t")

        def route(self) -> tuple[str, str, str]:
            return "x", "k", "q"

    seen: dict[str, Any] = {}

    class Plain(_probes.Probe):
        def dispatch_started(self, server: Any, kind: str, name: str, deliveries: Any) -> Any:
            seen[type(self).__name__] = deliveries

    class Asking(Plain):
        wants_deliveries = True

    plain, asking = Plain(), Asking()
    _probes.add_probe(plain)
    _probes.add_probe(asking)
    try:
        _probes.dispatch_started(None, "rpc", "m", [(Taken(), {"traceparent": "p"}, "m1")])
    finally:
        _probes.remove_probe(plain)
        _probes.remove_probe(asking)
    assert seen["Plain"] == ()
    assert seen["Asking"] == [_probes.Delivery(
        {"traceparent": "p"}, message_id="m1", system="memory", exchange="x", routing_key="k",
        queue="q", topic="t", reply=True, namespace="ns", event_type=None)]
