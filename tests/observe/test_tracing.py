"""dovecote.tracing: one trace from the caller through the broker into the
endpoint, on memory:// and the real RabbitMQ, with the OpenTelemetry SDK
(an explicit provider: the global one is never set in this process); span
names and attributes by OpenTelemetry's messaging (RabbitMQ) and RPC
conventions (more of them in test_semconv_spans.py)."""

from __future__ import annotations

import importlib
import json
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pykka
import pytest
from _rpc_support import PATIENCE, Recorder, delete_queues, memory_name, running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

import dovecote
from dovecote import NotificationResult, Target, tracing
from dovecote.drivers.memory import get_broker
from dovecote.observe import _probes

pytestmark = pytest.mark.timeout(60)
WIRE_KEY = "_context_dovecote_trace"


class Exporter(InMemorySpanExporter):
    """Keeps ended spans and wakes whoever waits for them."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()

    def export(self, spans: Sequence[ReadableSpan]) -> Any:
        result = super().export(spans)
        with self.cond:
            self.cond.notify_all()
        return result

    def span(self, name: str, count: int = 1, kind: SpanKind | None = None
             ) -> list[ReadableSpan]:
        """The spans called ``name`` (of ``kind``) once ``count`` of them ended."""
        def found() -> list[ReadableSpan]:
            return [s for s in self.get_finished_spans()
                    if s.name == name and kind in (None, s.kind)]
        with self.cond:
            assert self.cond.wait_for(lambda: len(found()) >= count, PATIENCE), (
                f"{count} {name!r} span(s) expected; ended: "
                f"{[(s.name, s.kind.name) for s in self.get_finished_spans()]}")
        return found()

    def one(self, name: str, kind: SpanKind | None = None) -> ReadableSpan:
        (span,) = self.span(name, kind=kind)
        return span

    def call(self, method: str) -> tuple[ReadableSpan, ReadableSpan]:
        """The client and the server span of a call (both named ``method``,
        the fully qualified ``rpc.method``)."""
        return self.one(method, SpanKind.CLIENT), self.one(method, SpanKind.SERVER)


@pytest.fixture
def spans() -> Exporter:
    return Exporter()


@pytest.fixture
def provider(spans: Exporter) -> Iterator[TracerProvider]:
    """An SDK provider exporting to ``spans``, traced with until the test ends."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.enable(tracer_provider=provider)
    yield provider
    tracing.disable()
    provider.shutdown()
    # What a probe raises is only logged (once): none of these tests may get there.
    assert not [hook for cls, hook in _probes._failed if cls is tracing._TracingProbe]


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.broker)])
def transport(request: pytest.FixtureRequest, unique: str, topic: str) -> Iterator[Any]:
    url = f"memory://{unique}" if request.param == "memory" else request.getfixturevalue(
        "rabbitmq")
    transport = dovecote.get_transport(url)
    yield transport
    delete_queues(transport, topic, f"{topic}.s1", f"{topic}.info")
    transport.cleanup()


memory_only = pytest.mark.parametrize("transport", ["memory"], indirect=True)


def system_of(transport: Any) -> dict[str, str]:
    """``messaging.system`` of a transport's spans."""
    return {"messaging.system": "memory" if transport.url.scheme == "memory" else "rabbitmq"}


def routed(transport: Any, key: str) -> dict[str, str]:
    """The routing-key attribute, which only RabbitMQ's spans carry."""
    if transport.url.scheme == "memory":
        return {}
    return {"messaging.rabbitmq.destination.routing_key": key}


class Worker:
    """An RPC endpoint that nests a span of its own and keeps what it saw."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer("test")
        self.seen: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def work(self, ctxt: dict[str, Any], value: Any) -> Any:
        with self.tracer.start_as_current_span("inner"):
            self.seen.put((ctxt, baggage.get_baggage("tenant")))
        return value

    def fail(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("no good")

    @dovecote.expected_exceptions(KeyError)
    def lookup(self, ctxt: dict[str, Any]) -> None:
        raise KeyError("missing")

    def unsendable(self, ctxt: dict[str, Any]) -> Any:
        return object()


def serve(transport: Any, topic: str, endpoints: list[Any]) -> Any:
    return running(dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"),
                                           endpoints))


def child_of(span: ReadableSpan, parent: ReadableSpan | trace.Span) -> bool:
    context = parent.get_span_context()
    assert span.parent is not None
    assert context is not None
    return (span.context.trace_id, span.parent.span_id) == (context.trace_id, context.span_id)


# -- across a call, a cast, a notification ----------------------------------------------
def test_a_call_is_one_trace_from_the_caller_into_the_endpoint(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    worker = Worker(provider)
    with serve(transport, topic, [worker]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
        with provider.get_tracer("test").start_as_current_span("caller") as caller:
            assert client.call({"user": "u-1"}, "work", value=7) == 7
    call, server = spans.call(f"{topic}/work")
    inner = spans.one("inner")
    assert child_of(call, caller)
    assert child_of(server, call)
    assert server.parent.is_remote
    assert child_of(inner, server)  # spans the endpoint makes nest under the server's
    msg_id = call.attributes["messaging.message.id"]
    assert call.attributes == {
        **system_of(transport), "messaging.operation.type": "send",
        "messaging.operation.name": "send", "messaging.destination.name": f"openstack:{topic}",
        **routed(transport, topic), "messaging.message.id": msg_id,
        "rpc.system.name": "oslo_messaging", "rpc.method": f"{topic}/work",
        "dovecote.outcome": "ok"}
    assert server.attributes == {
        **system_of(transport), "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": f"openstack:{topic}", **routed(transport, topic),
        "messaging.message.id": msg_id, "rpc.system.name": "oslo_messaging",
        "rpc.method": f"{topic}/work", "dovecote.server": "s1", "dovecote.outcome": "ok"}
    assert call.status.status_code is server.status.status_code is StatusCode.UNSET
    assert worker.seen.get(timeout=PATIENCE) == ({"user": "u-1"}, None)  # no trace entry


def test_a_cast_and_a_notification_are_producer_spans_their_consumers_children(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    seen = Recorder()

    class Listener:
        def info(self, ctxt: Any, publisher_id: Any, event_type: str, payload: Any,
                 metadata: Any) -> None:
            seen.add((ctxt, trace.get_current_span().get_span_context()))

    worker = Worker(provider)
    listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [Listener()])
    with serve(transport, topic, [worker]), running(listener):
        dovecote.get_rpc_client(transport, Target(topic=topic)).cast({}, "work", value=1)
        dovecote.Notifier(transport, "test.host", topics=[topic]).info(
            {"a": 1}, "thing.done", {})
        assert seen.wait_for(1)[0][0] == {"a": 1}
        worker.seen.get(timeout=PATIENCE)
    cast = spans.one(f"send openstack:{topic}")
    processed = spans.one(f"process openstack:{topic}")
    assert cast.kind is SpanKind.PRODUCER
    assert cast.parent is None
    assert processed.kind is SpanKind.CONSUMER  # nobody waits for a reply
    assert child_of(processed, cast)
    assert cast.attributes["rpc.method"] == processed.attributes["rpc.method"] == f"{topic}/work"
    assert cast.attributes["messaging.message.id"] == processed.attributes[
        "messaging.message.id"]
    notify = spans.one(f"send openstack:{topic}.info")
    consumed = spans.one(f"process openstack:{topic}.info")
    assert notify.kind is SpanKind.PRODUCER
    assert consumed.kind is SpanKind.CONSUMER
    assert child_of(consumed, notify)
    assert seen.items[0][1] == consumed.context  # current while the endpoint runs
    assert notify.attributes == {
        **system_of(transport), "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": f"openstack:{topic}.info",
        **routed(transport, f"{topic}.info"),
        "messaging.message.id": consumed.attributes["messaging.message.id"],
        "dovecote.event_type": "thing.done", "dovecote.outcome": "ok"}
    assert consumed.attributes == {
        **system_of(transport), "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": f"openstack:{topic}.info",
        **routed(transport, f"{topic}.info"),
        "messaging.message.id": notify.attributes["messaging.message.id"],
        "dovecote.priority": "info", "dovecote.event_type": "thing.done",
        "dovecote.server": topic, "dovecote.outcome": "handled"}


@memory_only
def test_a_batch_is_one_span_linked_to_each_message(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    got = Recorder()

    class Batch:
        def info(self, messages: list[dict[str, Any]]) -> None:
            got.add(len(messages))

    notifier = dovecote.Notifier(transport, "test.host", topics=[topic])
    for n in range(3):  # waiting in the queue: the listener takes them as one batch
        with provider.get_tracer("test").start_as_current_span(f"origin {n}"):
            notifier.info({}, "thing.done", {"n": n})
    listener = dovecote.get_batch_notification_listener(
        transport, [Target(topic=topic)], [Batch()], batch_size=3, batch_timeout=None)
    with running(listener):
        assert got.wait_for(1) == [3]
    (batch,) = spans.span(f"process openstack:{topic}.info")
    assert batch.kind is SpanKind.CONSUMER
    assert batch.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in batch.links] == [
        (s.context.trace_id, s.context.span_id)
        for s in spans.span(f"send openstack:{topic}.info", 3)]
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in batch.attributes  # three messages: no one id
    assert batch.attributes["messaging.destination.name"] == f"openstack:{topic}.info"


# -- failures ----------------------------------------------------------------------------------
def exception_of(span: ReadableSpan) -> dict[str, Any]:
    (event,) = [e for e in span.events if e.name == "exception"]
    return dict(event.attributes or {})


@memory_only
def test_failures_set_error_status_and_record_the_exception(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    with serve(transport, topic, [Worker(provider)]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
        with pytest.raises(ValueError, match="no good"):
            client.call({}, "fail")
        with pytest.raises(KeyError):
            client.call({}, "lookup")
        with pytest.raises(TypeError, match="cannot be sent"):
            client.call({}, "unsendable")
        with pytest.raises(dovecote.NoSuchMethod):
            client.call({}, "nothing_here")
    with pytest.raises(dovecote.MessagingTimeout):
        dovecote.get_rpc_client(transport, Target(topic=f"{topic}_nobody"), timeout=0.2).call(
            {}, "work", value=1)

    for name, server_outcome in [("fail", "error"), ("lookup", "expected_error"),
                                 ("unsendable", "unserializable_result")]:
        client_span, server = spans.call(f"{topic}/{name}")
        assert client_span.status.status_code is StatusCode.ERROR
        assert client_span.attributes["dovecote.outcome"] == "remote_error"
        assert server.attributes["dovecote.outcome"] == server_outcome
        assert exception_of(client_span)["exception.type"]
        assert client_span.attributes["error.type"] == exception_of(client_span)[
            "exception.type"]
    client_span, server = spans.call(f"{topic}/fail")
    remote = exception_of(client_span)
    assert "no good" in remote["exception.message"]
    assert len(remote["exception.message"]) <= 1024
    raised = exception_of(server)
    assert raised["exception.type"] == server.attributes["error.type"] == "ValueError"
    assert "Traceback" in raised["exception.stacktrace"]
    assert server.status.status_code is StatusCode.ERROR
    # A declared (expected) exception is the method's answer, not a failure of the server.
    expected = spans.call(f"{topic}/lookup")[1]
    assert expected.status.status_code is StatusCode.UNSET
    assert exception_of(expected)["exception.type"] == "KeyError"
    assert "error.type" not in expected.attributes  # set only for a failure
    assert spans.call(f"{topic}/unsendable")[1].status.status_code is StatusCode.ERROR
    # Refused before dispatch: the caller's span has the error, the server makes none.
    refused = spans.one(f"{topic}/nothing_here", SpanKind.CLIENT)
    assert refused.status.status_code is StatusCode.ERROR
    assert not [s for s in spans.get_finished_spans() if s.name == f"{topic}/nothing_here"
                and s.kind is SpanKind.SERVER]
    timed_out = spans.one(f"{topic}_nobody/work")
    assert timed_out.attributes["dovecote.outcome"] == "timeout"
    assert exception_of(timed_out)["exception.type"] == "dovecote.MessagingTimeout"
    assert timed_out.attributes["error.type"] == "dovecote.MessagingTimeout"

    transport.cleanup()  # sending fails: outcome "error"
    with pytest.raises(dovecote.MessageDeliveryFailure):
        dovecote.get_rpc_client(transport, Target(topic=topic)).cast({}, "work", value=1)
    failed = spans.one(f"send openstack:{topic}")
    assert failed.attributes["dovecote.outcome"] == "error"
    assert failed.attributes["error.type"] == "dovecote.MessageDeliveryFailure"


@memory_only
def test_notification_outcomes(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    answers = iter([ValueError("broken"), NotificationResult.REQUEUE, None])
    done = Recorder()

    class Flaky:
        def info(self, *args: Any) -> Any:
            answer = next(answers)
            done.add(answer)
            if isinstance(answer, Exception):
                raise answer
            return answer

    listener = dovecote.get_notification_listener(
        transport, [Target(topic=topic)], [Flaky()], allow_requeue=True, max_redeliveries=5)
    with running(listener):
        dovecote.Notifier(transport, "p", topics=[topic]).info({}, "thing.done", {})
        done.wait_for(3)
        # In the order they began: a requeued delivery may end after the next one. A
        # requeued copy comes back through the default exchange, straight to its queue.
        (first,) = spans.span(f"process openstack:{topic}.info")
        requeued, handled = sorted(spans.span(f"process {topic}.info", 2),
                                   key=lambda s: s.start_time or 0)
    assert first.attributes["dovecote.outcome"] == "requeued"  # because it raised
    assert first.status.status_code is StatusCode.ERROR
    assert exception_of(first)["exception.message"] == "broken"
    assert requeued.attributes["dovecote.outcome"] == "requeued"  # because it asked
    assert requeued.status.status_code is StatusCode.UNSET
    assert handled.attributes["dovecote.outcome"] == "handled"
    # One trace: each delivery continues the notification's context.
    notify = spans.one(f"send openstack:{topic}.info")
    assert all(child_of(s, notify) for s in (first, requeued, handled))
    assert {s.attributes["messaging.message.id"] for s in (first, requeued, handled)} == {
        notify.attributes["messaging.message.id"]}


# -- endpoint actors ---------------------------------------------------------------------------
class ActorWorker(pykka.ThreadingActor):
    def __init__(self, provider: TracerProvider) -> None:
        super().__init__()
        self.worker = Worker(provider)

    def work(self, ctxt: dict[str, Any], value: Any) -> Any:
        return self.worker.work(ctxt, value)

    def info(self, ctxt: Any, publisher_id: Any, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.worker.work(ctxt, payload)

    def current(self) -> trace.SpanContext:
        return trace.get_current_span().get_span_context()


@memory_only
def test_endpoint_actors_run_under_the_server_span(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    ref = ActorWorker.start(provider)
    try:
        listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [ref])
        with serve(transport, f"{topic}_rpc", [ref]), running(listener):
            dovecote.get_rpc_client(transport, Target(topic=f"{topic}_rpc")).call(
                {}, "work", value=1)
            dovecote.Notifier(transport, "p", topics=[topic]).info({}, "thing.done", 2)
            inner = spans.span("inner", 2)
            call, server = spans.call(f"{topic}_rpc/work")
            consumed = spans.one(f"process openstack:{topic}.info")
            assert child_of(server, call)
            assert {i.parent.span_id for i in inner} == {
                server.context.span_id, consumed.context.span_id}
            # The actor's thread is left as it was: nothing stays current there.
            assert not ref.proxy().current().get(timeout=PATIENCE).is_valid
    finally:
        ref.stop()


# -- what a peer sends ---------------------------------------------------------------------------
def raw_cast(transport: Any, topic: str, ctxt: dict[str, Any]) -> None:
    """A cast with this context on the wire, past every probe."""
    transport.driver.send(Target(topic=topic), ctxt, {"method": "work", "args": {"value": 0}})


@memory_only
def test_a_request_without_usable_trace_context_gets_a_root_span(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    worker = Worker(provider)
    with serve(transport, topic, [worker]):
        for n, garbage in enumerate([None, "x" * 100_000, [1, 2], {"traceparent": "00-zz"},
                                     {"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}]):
            raw_cast(transport, topic, {"n": n} if garbage is None else
                     {"n": n, "dovecote_trace": garbage})
            assert worker.seen.get(timeout=PATIENCE) == ({"n": n}, None)
        processed = spans.span(f"process openstack:{topic}", 5)
    assert [s.parent for s in processed] == [None] * 5
    assert len({s.context.trace_id for s in processed}) == 5


@memory_only
def test_oslo_messagings_own_trace_fields_are_joined_and_left_in_the_context(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    """oslo.messaging's tracing sends ``traceparent``/``tracestate`` at the top of
    the context: a dovecote server continues that trace and leaves them there."""
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    ctxt = {"user": "u", "traceparent": f"00-{trace_id}-{span_id}-01", "tracestate": "k=v"}
    worker = Worker(provider)
    with serve(transport, topic, [worker]):
        raw_cast(transport, topic, ctxt)
        assert worker.seen.get(timeout=PATIENCE) == (ctxt, None)
        processed = spans.one(f"process openstack:{topic}")
    assert processed.parent is not None
    assert f"{processed.context.trace_id:032x}" == trace_id
    assert f"{processed.parent.span_id:016x}" == span_id
    assert str(processed.context.trace_state) == "k=v" or processed.context.trace_state.get(
        "k") == "v"


hexish = st.text(alphabet="0123456789abcdefABCDEF-x", min_size=0, max_size=40)
traceparents = st.one_of(
    st.builds("-".join, st.lists(hexish, min_size=1, max_size=6)),
    st.builds(lambda t, s, f: f"00-{t:032x}-{s:016x}-{f:02x}",
              st.integers(0, 2**128 - 1), st.integers(0, 2**64 - 1), st.integers(0, 255)),
    st.text(max_size=300),
)
carrier_values = st.one_of(traceparents, st.text(max_size=2000),
                           st.just("k=v," * 400), st.just("x" * 1_000_000))
carriers = st.dictionaries(
    st.one_of(st.sampled_from(["traceparent", "tracestate", "baggage"]), st.text(max_size=9)),
    carrier_values, max_size=6)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=50),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.text(max_size=12), inner, max_size=3), max_leaves=8)
#: A sampled trace's context (the SDK may set the W3C level 2 "random" flag too).
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[13]")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=st.lists(st.one_of(carriers, json_values), max_size=4),
       direct=st.lists(carriers, max_size=2))
def test_hostile_carriers_never_raise_and_never_make_broken_spans(
        raw: list[Any], direct: list[dict[str, str]], provider: TracerProvider) -> None:
    """From a peer (through ``take_carrier``) or straight to the probe, huge
    values included: a valid span, a parent only from a well-formed traceparent."""
    probe = tracing._probe
    assert probe is not None
    taken = [_probes.take_carrier({"dovecote_trace": r}) for r in raw] + direct
    before = trace.get_current_span()
    token = probe.dispatch_started(None, "notification", "info",
                                   [_probes.Delivery(carrier) for carrier in taken])
    span = token.span
    assert span.get_span_context().is_valid
    assert trace.get_current_span() is span
    probe.dispatch_finished(token, _probes.Dispatched(None, "notification", "info", "ok", 0))
    assert trace.get_current_span() is before  # detached
    if isinstance(span, trace.NonRecordingSpan):
        # Dropped only as the peer asked: a well-formed traceparent, not sampled.
        assert len(taken) == 1
        assert not span.get_span_context().trace_flags.sampled
        assert f"-{span.get_span_context().trace_id:032x}-" in taken[0]["traceparent"]
        return
    parent = span.parent
    if parent is not None:
        assert len(taken) == 1
        assert parent.is_valid
        assert parent.trace_id == span.context.trace_id
        assert f"-{parent.trace_id:032x}-{parent.span_id:016x}-" in taken[0]["traceparent"]
    for link in span.links:
        assert link.context.is_valid


def test_a_dispatch_that_ends_elsewhere_or_never_leaves_nothing_current(
        provider: TracerProvider, spans: Exporter) -> None:
    """Only the thread that attached a context detaches it: a dispatch reported
    from another thread (an endpoint actor's watch) or never (a bug) is
    detached when the next dispatch starts in that thread."""
    probe = tracing._probe
    assert probe is not None
    def report(outcome: str) -> _probes.Dispatched:
        return _probes.Dispatched(None, "rpc", "m", outcome, 0)

    def call() -> tuple[_probes.Delivery]:
        return (_probes.Delivery({}, topic="t", reply=True),)

    before = trace.get_current_span()
    probe.dispatch_started(None, "rpc", "lost", call())  # never reported
    elsewhere = probe.dispatch_started(None, "rpc", "elsewhere", call())
    assert trace.get_current_span() is elsewhere.span  # "lost" ended and detached first
    other = threading.Thread(target=probe.dispatch_finished, args=(elsewhere, report("ok")))
    other.start()
    other.join()
    assert trace.get_current_span() is elsewhere.span  # ended there, still attached here
    last = probe.dispatch_started(None, "rpc", "last", call())
    probe.dispatch_finished(last, report("ok"))
    assert trace.get_current_span() is before
    unreported = spans.one("t/lost")
    assert unreported.attributes["dovecote.outcome"] == "unreported"
    assert unreported.attributes["error.type"] == "unreported"
    assert unreported.status.status_code is StatusCode.ERROR
    assert spans.one("t/elsewhere").attributes["dovecote.outcome"] == "ok"
    assert spans.one("t/last").parent is None  # not a child of what was stale


# -- the provider, enable and disable ---------------------------------------------------------
@pytest.fixture
def untraced() -> Iterator[None]:
    yield
    tracing.disable()


def sent_context(transport: Any, topic: str, send: Callable[[], None]) -> dict[str, Any]:
    """The ``_context_*`` entries of the notification ``send`` puts in the queue."""
    send()
    (stored,) = get_broker(memory_name(transport)).drain(f"{topic}.info")
    body = json.loads(stored.body)
    message = json.loads(body["oslo.message"]) if "oslo.message" in body else body
    return {k: v for k, v in message.items() if k.startswith("_context_")}


@memory_only
def test_nothing_without_a_tracer_provider(transport: Any, topic: str, untraced: None) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), (
        "something in this process set the global tracer provider")
    notifier = dovecote.Notifier(transport, "p", topics=[topic])
    for provider in (None, trace.NoOpTracerProvider()):
        tracing.enable(tracer_provider=provider)
        assert sent_context(transport, topic, lambda: notifier.info({"a": 1}, "e", {})) == {
            "_context_a": 1}  # no trace entry
        probe = tracing._probe
        assert probe is not None
        assert probe.tracer() is None
        carrier: dict[str, Any] = {}
        assert probe.client_started(_probes.Sending("call", topic, "work"), carrier) is None
        assert carrier == {}
        assert probe.dispatch_started(None, "rpc", "work", (_probes.Delivery({}),)) is None
    worker = Worker()
    with serve(transport, topic, [worker]):
        assert dovecote.get_rpc_client(transport, Target(topic=topic)).call(
            {}, "work", value=3) == 3


@memory_only
def test_a_sampled_out_trace_still_travels_so_the_server_drops_it_too(
        transport: Any, topic: str, untraced: None) -> None:
    exporter = Exporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(tracer_provider=provider)
    notifier = dovecote.Notifier(transport, "p", topics=[topic])
    wire = sent_context(transport, topic, lambda: notifier.info({}, "e", {}))
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[02]", wire[WIRE_KEY]["traceparent"])
    worker = Worker(provider)
    with serve(transport, topic, [worker]):
        dovecote.get_rpc_client(transport, Target(topic=topic)).call({}, "work", value=3)
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


@memory_only
def test_enable_is_idempotent_and_disable_stops_it(
        transport: Any, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    tracing.enable(tracer_provider=provider)
    assert sum(isinstance(p, tracing._TracingProbe) for p in _probes.probes) == 1
    notifier = dovecote.Notifier(transport, "p", topics=[topic])
    token = otel_context.attach(baggage.set_baggage("tenant", "t-1"))
    try:
        wire = sent_context(transport, topic, lambda: notifier.info({}, "e", {}))
    finally:
        otel_context.detach(token)
    assert TRACEPARENT.fullmatch(wire[WIRE_KEY]["traceparent"])
    assert wire[WIRE_KEY]["baggage"] == "tenant=t-1"  # the global propagator's choice
    tracing.disable()
    tracing.disable()
    assert not [p for p in _probes.probes if isinstance(p, tracing._TracingProbe)]
    assert sent_context(transport, topic, lambda: notifier.info({}, "e", {})) == {}
    assert len(spans.get_finished_spans()) == 1


def test_importing_without_opentelemetry_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "dovecote.tracing")
    monkeypatch.delitem(sys.modules, "dovecote.observe.tracing")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'dovecote[otel]'")):
        importlib.import_module("dovecote.tracing")


# -- oslo.messaging peers -----------------------------------------------------------------------
@pytest.mark.interop
@pytest.mark.broker
def test_an_oslo_server_answers_a_traced_call_and_sees_one_more_context_entry(
        rabbitmq: str, topic: str, provider: TracerProvider, spans: Exporter) -> None:
    import oslo_messaging
    from test_kombu_driver import oslo_conf

    class Echo:
        def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
            return {"ctxt": ctxt, "value": value}

    oslo_transport = oslo_messaging.get_rpc_transport(oslo_conf(), url=rabbitmq)
    server = oslo_messaging.get_rpc_server(
        oslo_transport, oslo_messaging.Target(topic=topic, server="s1"), [Echo()])
    transport = dovecote.get_transport(rabbitmq)
    server.start()
    try:
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
        tracing.disable()
        plain = client.call({"user": "u-1"}, "echo", value=[1, {"a": 2}])
        tracing.enable(tracer_provider=provider)
        traced = client.call({"user": "u-1"}, "echo", value=[1, {"a": 2}])
    finally:
        server.stop()
        server.wait()
        oslo_transport.cleanup()
        delete_queues(transport, topic, f"{topic}.s1")
        transport.cleanup()
    call = spans.one(f"{topic}/echo")
    assert call.status.status_code is StatusCode.UNSET
    context = call.context
    assert traced == {**plain, "ctxt": {**plain["ctxt"], "dovecote_trace": {
        "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                       f"{context.trace_flags:02x}"}}}


# -- switched on by the application's tracer provider alone ------------------------------------
AUTOLOAD = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import dovecote
from dovecote.observe import _probes

mode = sys.argv[1]
if mode == "disabled":
    import dovecote.tracing
    dovecote.tracing.disable()  # the application says no, before it sets a provider
exporter = InMemorySpanExporter()
if mode != "no-provider":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

class Echo:
    def echo(self, ctxt, value):
        return value

transport = dovecote.get_transport("memory://autoload")
server = dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="s"), [Echo()])
server.start()
client = dovecote.get_rpc_client(transport, dovecote.Target(topic="t"), timeout=5)
assert client.call({}, "echo", value=1) == 1
server.stop()
server.wait(timeout=5)
spans = {f"{s.name} {s.kind.name}": s for s in exporter.get_finished_spans()}
print(json.dumps({
    "probes": [type(p).__name__ for p in _probes.probes],
    "spans": sorted(spans),
    "one_trace": len({s.context.trace_id for s in spans.values()}) == 1,
    "child": bool(spans) and spans["t/echo SERVER"].parent.span_id
             == spans["t/echo CLIENT"].context.span_id,
}))
"""


@pytest.mark.parametrize(("mode", "probes", "names"), [
    ("provider", ["_TracingProbe"], ["t/echo CLIENT", "t/echo SERVER"]),
    ("no-provider", [], []),
    ("disabled", [], []),
])
def test_a_tracer_provider_set_by_the_application_switches_tracing_on_by_itself(
        mode: str, probes: list[str], names: list[str]) -> None:
    """Without ``dovecote.tracing.enable()``: the application's global tracer
    provider alone gives the spans; no provider, or ``disable()``, no probe at all."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", AUTOLOAD, mode], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["probes"] == probes
    assert seen["spans"] == names
    if names:
        assert seen["one_trace"]
        assert seen["child"]
