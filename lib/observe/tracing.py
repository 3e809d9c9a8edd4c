"""OpenTelemetry traces: a span for every send and every dispatch, one trace
from the caller through the broker into the endpoint, named and described by
OpenTelemetry's semantic conventions for messaging (RabbitMQ's) and RPC.

:func:`enable` registers a probe (see :mod:`dovecote.observe._probes`) for the
whole process. A call, cast or notification gets a client span, and its W3C
trace context travels in the message context as ``_context_dovecote_trace``
(:data:`CONTEXT_KEY`); a dovecote server takes that entry out before endpoints
see the context, continues the trace with a span around the dispatch, and
makes it current in the thread that runs the endpoint, so the spans the
endpoint creates nest under it. With no tracer provider configured (the
OpenTelemetry API's default) the probe does nothing: no span, no entry.

A call is an RPC: ``CLIENT`` and ``SERVER`` spans named by ``rpc.method``
(``<topic>/<method>``). A cast or a notification is a message: a ``PRODUCER``
span ``send <destination>`` and a ``CONSUMER`` span ``process <destination>``,
the destination named as RabbitMQ's conventions say (``<exchange>:<routing
key>``, and the queue where it differs), on every transport.

Needs ``opentelemetry-api``: ``pip install 'dovecote[otel]'``.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # the extra is not installed
    msg = f"dovecote.observe.tracing needs opentelemetry-api: pip install 'dovecote[otel]' ({exc})"
    raise ImportError(msg) from exc

from ..observe._fields import describe
from . import _probes
from ._probes import CONTEXT_KEY

if TYPE_CHECKING:
    from contextvars import Token

    from ._view import ServerView

__all__ = [
    "CONTEXT_KEY", "ERROR_OUTCOMES", "SYSTEM", "disable", "enable"]

#: ``rpc.system.name`` of the spans of calls and casts: the RPC protocol
#: (oslo.messaging's), whichever broker carries it. ``messaging.system`` names
#: the broker: ``rabbitmq``, ``memory``, ``amqp1`` (see the drivers).
SYSTEM = "oslo_messaging"

#: Server outcomes that are failures of the dispatch (status ``ERROR``).
#: ``expected_error`` is not: the method raised an exception it declares
#: (oslo.messaging's ``expected_exceptions``), which is an answer; it is
#: recorded as an exception event and the status stays unset.
#: ``requeued`` counts only when something raised (not for ``REQUEUE``).
ERROR_OUTCOMES = frozenset({
    "error", "aborted", "unserializable_result", "unsent", "rejected", "malformed",
    "dead_lettered", "released",
})

#: Bounds on what a span carries: names and attribute values from the
#: application, exception messages and stack traces, links of a batch.
_NAME, _MESSAGE, _STACK, _MAX_LINKS = 255, 1024, 4096, 128
_ROOT = Context()  # extraction starts from nothing: no parent unless the carrier has one
_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
try:
    _VERSION: str | None = metadata.version("dovecote")
except metadata.PackageNotFoundError:  # pragma: no cover - not installed
    _VERSION = None


def _clip(text: str, limit: int = _NAME) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return _clip(cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}")


def _record(span: trace.Span, exc: BaseException) -> None:
    """An ``exception`` event, every value bounded (``Span.record_exception``
    would carry a remote error's whole message, remote traceback included)."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - user code: the event goes without it
        message = "<unprintable>"
    attributes: dict[str, str] = {"exception.type": _type_name(exc),
                                  "exception.message": _clip(message, _MESSAGE)}
    if exc.__traceback__ is not None:
        with contextlib.suppress(Exception):  # the event goes without it
            attributes["exception.stacktrace"] = _clip(
                "".join(traceback.format_exception(exc)), _STACK)
    span.add_event("exception", attributes)


def _failed(span: trace.Span, error: BaseException | None, outcome: str) -> None:
    if error is not None:
        _record(span, error)
    span.set_attribute("error.type", _type_name(error) if error is not None else outcome)
    why = describe(error, 200) if error is not None else outcome
    span.set_status(Status(StatusCode.ERROR, why))


def _destination(exchange: str, routing_key: str, queue: str = "") -> str:
    """``messaging.destination.name`` as RabbitMQ's conventions build it:
    ``<exchange>:<routing key>:<queue>``, an empty part left out and the queue
    too when it is the routing key; ``amq.default`` when nothing is known."""
    parts = [part for part in (exchange, routing_key) if part]
    if queue and queue != routing_key:
        parts.append(queue)
    return _clip(":".join(parts)) if parts else "amq.default"


def _rpc_method(topic: str | None, namespace: str | None, method: str) -> str:
    """``rpc.method``, fully qualified: ``<topic>/<method>``, or
    ``<topic>/<namespace>.<method>`` for a method of a namespace."""
    name = f"{namespace}.{method}" if namespace else method
    return _clip(f"{topic}/{name}" if topic else name)


def _anonymous(exchange: str, queue: str) -> bool:
    """A fanout listener's own queue (``<topic>_fanout_<hex>``): named at
    random, gone with its listener."""
    return exchange.endswith("_fanout") and queue.startswith(exchange + "_")


def _extract(carrier: Mapping[str, str]) -> Context:
    """The context a carrier names (through the global propagator), or an
    empty one: a hostile or broken carrier gives a root span, never an error."""
    if not carrier:
        return _ROOT
    try:
        return propagate.extract(carrier, context=_ROOT)
    except Exception:  # noqa: BLE001 - a propagator that chokes on a peer's text
        return _ROOT


class _Dispatch:
    """A server span, and the token of the context it made current (in the
    thread that started the dispatch)."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: Token[Context]) -> None:
        self.span, self.token = span, token


#: The dispatch whose context is attached in this thread, until it is detached.
_attached = threading.local()


def _end(dispatch: _Dispatch) -> None:
    """End the span (once) and, in the thread that attached its context, detach it."""
    if dispatch.span.is_recording():
        dispatch.span.end()
    if getattr(_attached, "dispatch", None) is dispatch:
        _attached.dispatch = None
        otel_context.detach(dispatch.token)


def _drop_stale() -> None:
    """A dispatch ends in another thread (an endpoint actor whose request was
    answered by its watch), or, after a bug, not at all: its context stays
    attached here. Detach it before the next dispatch in this thread."""
    stale: _Dispatch | None = getattr(_attached, "dispatch", None)
    if stale is None:
        return
    if stale.span.is_recording():
        stale.span.set_attributes({"dovecote.outcome": "unreported", "error.type": "unreported"})
        stale.span.set_status(Status(StatusCode.ERROR, "the dispatch ended without a report"))
    _end(stale)


class _TracingProbe(_probes.Probe):
    """Spans for sends and dispatches; nothing while no tracer provider is set."""

    wants_deliveries = True

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self.provider = provider
        self._cached: tuple[trace.TracerProvider, trace.Tracer] | None = None

    def tracer(self) -> trace.Tracer | None:
        """The tracer of the configured provider; ``None`` for the API's default
        (a proxy until the application sets one) or a no-op provider."""
        provider = self.provider if self.provider is not None else trace.get_tracer_provider()
        if isinstance(provider, _NO_PROVIDER):
            return None
        cached = self._cached
        if cached is None or cached[0] is not provider:
            cached = self._cached = (provider, provider.get_tracer("dovecote", _VERSION))
        return cached[1]

    # -- clients ----------------------------------------------------------------
    def client_started(self, sending: _probes.Sending, carrier: dict[str, Any]) -> Any:
        tracer = self.tracer()
        if tracer is None:
            return None
        kind, driver, target = sending.kind, sending.driver, sending.target
        attributes: dict[str, str] = {
            "messaging.operation.type": "send", "messaging.operation.name": "send"}
        system = destination = ""
        if driver is not None:
            system = attributes["messaging.system"] = driver.messaging_system
            if target is not None:
                exchange, key = driver.route(target)
                destination = attributes["messaging.destination.name"] = _destination(
                    exchange, key)
                if system == "rabbitmq" and key:
                    attributes["messaging.rabbitmq.destination.routing_key"] = _clip(key)
        if sending.message_id:
            attributes["messaging.message.id"] = _clip(sending.message_id)
        if kind == "notify":
            attributes["dovecote.event_type"] = _clip(sending.method)
            name = f"send {destination}" if destination else "send"
        else:
            attributes["rpc.system.name"] = SYSTEM
            method = attributes["rpc.method"] = _rpc_method(
                sending.topic, target.namespace if target is not None else None,
                sending.method)
            name = method if kind == "call" else (
                f"send {destination}" if destination else "send")
        span = tracer.start_span(
            name, kind=SpanKind.CLIENT if kind == "call" else SpanKind.PRODUCER,
            attributes=attributes)
        # A sampled-out span still has a valid context: it travels, so the
        # server follows the same sampling decision.
        if span.get_span_context().is_valid:
            try:
                propagate.inject(carrier, context=trace.set_span_in_context(span))
            except BaseException:
                span.end()
                raise
        return span

    def client_finished(self, token: Any, call: _probes.ClientCall) -> None:
        if token is None:
            return
        span: trace.Span = token
        span.set_attribute("dovecote.outcome", call.outcome)
        if call.outcome != "ok":
            _failed(span, call.error, call.outcome)
        span.end()

    # -- servers ----------------------------------------------------------------
    def dispatch_started(self, server: ServerView | None, kind: str, name: str,
                         deliveries: Sequence[_probes.Delivery]) -> Any:
        _drop_stale()
        tracer = self.tracer()
        if tracer is None:
            return None
        parent, links = _ROOT, None
        if len(deliveries) == 1:
            parent = _extract(deliveries[0].carrier)
        elif deliveries:  # a batch: no single parent, a link to each message's context
            contexts = (trace.get_current_span(_extract(d.carrier)).get_span_context()
                        for d in deliveries[:_MAX_LINKS])
            links = [Link(found) for found in contexts if found.is_valid]
        attributes: dict[str, str | int | bool] = {
            "messaging.operation.type": "process", "messaging.operation.name": "process",
        }
        where = self._where(deliveries, attributes)
        first = deliveries[0] if deliveries else None
        single = first if len(deliveries) == 1 else None
        if single is not None and single.message_id:
            attributes["messaging.message.id"] = _clip(single.message_id)
        if len(deliveries) > 1:
            attributes["messaging.batch.message_count"] = len(deliveries)
        span_name = f"process {where}" if where else "process"
        span_kind = SpanKind.CONSUMER
        if kind == "rpc":
            attributes["rpc.system.name"] = SYSTEM
            attributes["rpc.method"] = method = _rpc_method(
                first.topic if first is not None else None,
                first.namespace if first is not None else None, name)
            if single is not None and single.reply:  # a call: the caller waits
                span_name, span_kind = method, SpanKind.SERVER
        else:
            attributes["dovecote.priority"] = name
            if single is not None and single.event_type is not None:
                attributes["dovecote.event_type"] = _clip(single.event_type)
        if server is not None:
            attributes["dovecote.server"] = _clip(server.name)
        span = tracer.start_span(span_name, context=parent, kind=span_kind,
                                 attributes=attributes, links=links)
        # The extracted context (its baggage too) with the span, current here.
        dispatch = _Dispatch(span, otel_context.attach(trace.set_span_in_context(span, parent)))
        _attached.dispatch = dispatch
        return dispatch

    @staticmethod
    def _where(deliveries: Sequence[_probes.Delivery],
               attributes: dict[str, str | int | bool]) -> str:
        """Put the system and destination the messages share in ``attributes``;
        the destination a span name shows (its template for a listener's own
        fanout queue), or ``""``."""
        systems = {d.system for d in deliveries}
        if len(systems) != 1 or "" in systems:
            return ""
        (system,) = systems
        attributes["messaging.system"] = system
        routes = {(d.exchange, d.routing_key, d.queue) for d in deliveries}
        if len(routes) != 1:
            return ""
        ((exchange, key, queue),) = routes
        if not (exchange or key or queue):
            return ""
        name = attributes["messaging.destination.name"] = _destination(exchange, key, queue)
        if system == "rabbitmq" and key:
            attributes["messaging.rabbitmq.destination.routing_key"] = _clip(key)
        if _anonymous(exchange, queue):
            attributes["messaging.destination.anonymous"] = True
            attributes["messaging.destination.temporary"] = True
            name = attributes["messaging.destination.template"] = _destination(exchange, key)
        return name

    def dispatch_finished(self, token: Any, dispatched: _probes.Dispatched) -> None:
        if not isinstance(token, _Dispatch):
            return  # refused before dispatch began, or no provider: no span
        span, outcome, error = token.span, dispatched.outcome, dispatched.error
        if span.is_recording():
            span.set_attribute("dovecote.outcome", outcome)
            if outcome in ERROR_OUTCOMES or (outcome == "requeued" and error is not None):
                _failed(span, error, outcome)
            elif error is not None:  # expected_error: the method's answer, not a failure
                _record(span, error)
        _end(token)


_lock = threading.Lock()
_probe: _TracingProbe | None = None


def enable(*, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace every send and dispatch of this process with ``tracer_provider``
    (default: the global one, looked up at each send, so this may run before
    the application configures OpenTelemetry). Again: switches the provider.

    Without this call, tracing switches itself on with the global provider
    once the application has set one (see :func:`dovecote.observe._autotrace.autoload`)."""
    global _probe  # noqa: PLW0603 - one probe per process
    with _lock:
        _probes.auto_tracing = False
        if _probe is None:
            _probe = _TracingProbe(tracer_provider)
            _probes.add_probe(_probe)
        else:
            _probe.provider, _probe._cached = tracer_provider, None


def _enable_by_itself() -> None:
    """Trace with the global provider the application configured, unless
    :func:`enable` or :func:`disable` already decided (what ``autoload`` calls)."""
    global _probe  # noqa: PLW0603
    with _lock:
        if _probes.auto_tracing:
            _probes.auto_tracing = False
            if _probe is None:
                _probe = _TracingProbe(None)
                _probes.add_probe(_probe)


def disable() -> None:
    """Stop tracing (sends and dispatches under way still end their spans), for
    good: it no longer switches itself on when a tracer provider is set."""
    global _probe  # noqa: PLW0603
    with _lock:
        _probes.auto_tracing = False
        if _probe is not None:
            _probes.remove_probe(_probe)
            _probe = None
