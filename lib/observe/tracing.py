"""OpenTelemetry traces: a span for every send and every dispatch, one trace
from the caller through the broker into the endpoint.

:func:`enable` registers a probe (see :mod:`dovecote.observe._probes`) for the
whole process. A call, cast or notification gets a client span, and its W3C
trace context travels in the message context as ``_context_dovecote_trace``
(:data:`CONTEXT_KEY`); a dovecote server takes that entry out before endpoints
see the context, continues the trace with a span around the dispatch, and
makes it current in the thread that runs the endpoint, so the spans the
endpoint creates nest under it. With no tracer provider configured (the
OpenTelemetry API's default) the probe does nothing: no span, no entry.

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

#: ``messaging.system`` and ``rpc.system`` of every span: the protocol
#: (oslo.messaging's wire format), whichever broker carries it.
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
    why = describe(error, 200) if error is not None else outcome
    span.set_status(Status(StatusCode.ERROR, why))


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
        stale.span.set_attribute("dovecote.outcome", "unreported")
        stale.span.set_status(Status(StatusCode.ERROR, "the dispatch ended without a report"))
    _end(stale)


class _TracingProbe(_probes.Probe):
    """Spans for sends and dispatches; nothing while no tracer provider is set."""

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
    def client_started(self, kind: str, topic: str, name: str,
                       carrier: dict[str, Any]) -> Any:
        tracer = self.tracer()
        if tracer is None:
            return None
        attributes: dict[str, str] = {
            "messaging.system": SYSTEM, "messaging.operation.type": "send",
            "messaging.operation.name": kind, "messaging.destination.name": _clip(topic),
        }
        if kind == "notify":
            attributes["dovecote.event_type"] = _clip(name)
        else:
            attributes["rpc.system"] = SYSTEM
            attributes["rpc.method"] = _clip(name)
        span = tracer.start_span(
            f"{kind} {_clip(name)}", kind=SpanKind.CLIENT if kind == "call" else SpanKind.PRODUCER,
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
                         carriers: Sequence[Mapping[str, str]]) -> Any:
        _drop_stale()
        tracer = self.tracer()
        if tracer is None:
            return None
        parent, links = _ROOT, None
        if len(carriers) == 1:
            parent = _extract(carriers[0])
        elif carriers:  # a batch: no single parent, a link to each message's context
            contexts = (trace.get_current_span(_extract(c)).get_span_context()
                        for c in carriers[:_MAX_LINKS])
            links = [Link(found) for found in contexts if found.is_valid]
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM, "messaging.operation.type": "process",
            "messaging.operation.name": "process",
        }
        if kind == "rpc":
            attributes["rpc.system"] = SYSTEM
            attributes["rpc.method"] = name
        else:
            attributes["dovecote.priority"] = name
        if server is not None:
            attributes["dovecote.server"] = _clip(server.name)
        if len(carriers) > 1:
            attributes["messaging.batch.message_count"] = len(carriers)
        span = tracer.start_span(
            f"process {name}", context=parent,
            kind=SpanKind.SERVER if kind == "rpc" else SpanKind.CONSUMER,
            attributes=attributes, links=links)
        # The extracted context (its baggage too) with the span, current here.
        dispatch = _Dispatch(span, otel_context.attach(trace.set_span_in_context(span, parent)))
        _attached.dispatch = dispatch
        return dispatch

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
