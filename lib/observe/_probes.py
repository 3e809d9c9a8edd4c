"""Hooks for what watches dovecote from outside: metrics, traces, test helpers.

A :class:`Probe` is registered for the whole process with :func:`add_probe`.
With none registered (the default), every hook site in the runtime costs one
module attribute load and a falsy test, and nothing else runs. A probe is
told when a server receives messages, when it starts and finishes
dispatching one (or a batch), when a client sends, and when a listener
reconnects. What a probe raises is logged once and never reaches the runtime.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import MessagingTimeout
from ._logging import get_logger

if TYPE_CHECKING:
    from ._view import ServerView

__all__ = [
    "UNKNOWN",
    "ClientCall",
    "Dispatched",
    "Probe",
    "Sending",
    "Started",
    "add_probe",
    "client_finished",
    "client_started",
    "dispatch_finished",
    "dispatch_started",
    "listener_reconnected",
    "live_servers",
    "probes",
    "received",
    "remove_probe",
    "take_carrier",
    "track_server",
]

log = get_logger("dovecote.instrument")

#: The name a dispatch carries when the request named no method of the
#: endpoints' table (a label value must never be a raw name from a peer).
UNKNOWN = "<unknown>"


@dataclasses.dataclass(slots=True)
class Dispatched:
    """What one dispatch did: ``count`` messages of ``kind`` (``"rpc"`` or
    ``"notification"``) to ``name`` (the method, or the notification priority:
    both from the endpoints' table, else :data:`UNKNOWN`) ended in ``outcome``
    after ``seconds``, with ``result`` or ``error`` (what an RPC method returned
    or raised; for notifications what the last endpoint returned or the first
    error). ``endpoints`` are the endpoint objects (as given to the server)
    that ran."""

    server: ServerView | None
    kind: str
    name: str
    outcome: str
    seconds: float
    result: Any = None
    error: BaseException | None = None
    endpoints: tuple[Any, ...] = ()
    count: int = 1
    #: False for the further reports of one dispatch whose messages ended in
    #: different outcomes (a batch partly requeued, partly parked): time it once.
    timed: bool = True


@dataclasses.dataclass(slots=True)
class ClientCall:
    """What one send did: a ``"call"``, ``"cast"`` or ``"notify"`` of ``name``
    (the method or the event type) to ``topic`` ended in ``outcome``
    (``"ok"``, ``"remote_error"``, ``"timeout"``, ``"error"``) after ``seconds``."""

    kind: str
    topic: str
    name: str
    outcome: str
    seconds: float
    error: BaseException | None = None


class Probe:
    """Watches the runtime; every method is optional and cheap. Methods run in
    whatever thread did the work (a worker, an endpoint actor, the caller)."""

    def received(self, server: ServerView, kind: str, count: int) -> None:
        """The dispatcher of ``server`` got ``count`` messages from a listener."""

    def dispatch_started(self, server: ServerView | None, kind: str, name: str,
                         carriers: Sequence[Mapping[str, str]]) -> Any:
        """Dispatch of messages that carried these ``carriers`` (the text entries
        of their :data:`CONTEXT_KEY` context entry; empty if none) begins, in the
        thread that runs the endpoint. The return value comes back in
        :meth:`dispatch_finished`."""
        return None

    def dispatch_finished(self, token: Any, dispatched: Dispatched) -> None:
        """A dispatch ended (``token``: what :meth:`dispatch_started` returned,
        ``None`` for messages refused before dispatch began)."""

    def client_started(self, kind: str, topic: str, name: str,
                       carrier: dict[str, Any]) -> Any:
        """A client is about to send; keys put in ``carrier`` travel with the
        message in its context (see :data:`dovecote.observe.tracing.CONTEXT_KEY`)."""
        return None

    def client_finished(self, token: Any, call: ClientCall) -> None:
        """A send ended (for a call: its reply came, or it failed)."""

    def listener_reconnected(self, transport: str) -> None:
        """A listener on a ``transport`` (a URL scheme) got its connection back."""


#: The probes registered, as a tuple (read without a lock at every hook site).
probes: tuple[Probe, ...] = ()
_lock = threading.Lock()
_servers: weakref.WeakSet[ServerView] = weakref.WeakSet()
_failed: set[tuple[type[Probe], str]] = set()


def add_probe(probe: Probe) -> None:
    """Register ``probe`` for the whole process (again: no effect)."""
    global probes  # noqa: PLW0603 - one immutable tuple, swapped under the lock
    with _lock:
        if probe not in probes:
            probes = (*probes, probe)


def remove_probe(probe: Probe) -> None:
    """Unregister ``probe`` (not registered: no effect)."""
    global probes  # noqa: PLW0603
    with _lock:
        probes = tuple(p for p in probes if p is not probe)


def track_server(server: ServerView) -> None:
    """Remember ``server`` (weakly) for probes that read gauges at scrape time."""
    with _lock:
        _servers.add(server)


def live_servers() -> list[ServerView]:
    """The servers that exist, running or not."""
    with _lock:
        return list(_servers)


def _broken(probe: Probe, hook: str, exc: BaseException) -> None:
    key = (type(probe), hook)
    if key not in _failed:  # once per probe class and hook: never a flood
        _failed.add(key)
        log.error("probe.failed", probe=type(probe).__name__, hook=hook, error=repr(exc)[:300])


#: Probes and their tokens for a dispatch or a send under way.
Started = list[tuple[Probe, Any]]


def received(server: ServerView, kind: str, count: int) -> None:
    for probe in probes:
        try:
            probe.received(server, kind, count)
        except Exception as exc:  # noqa: BLE001 - a probe never breaks the runtime
            _broken(probe, "received", exc)


def dispatch_started(server: ServerView | None, kind: str, name: str,
                     carriers: Sequence[Mapping[str, str]]) -> Started:
    started: Started = []
    for probe in probes:
        try:
            started.append((probe, probe.dispatch_started(server, kind, name, carriers)))
        except Exception as exc:  # noqa: BLE001
            _broken(probe, "dispatch_started", exc)
    return started


def dispatch_finished(started: Started | None, dispatched: Dispatched) -> None:
    """Tell the probes that saw the start (or, with ``started=None``, all of them)."""
    pairs = started if started is not None else [(probe, None) for probe in probes]
    for probe, token in pairs:
        try:
            probe.dispatch_finished(token, dispatched)
        except Exception as exc:  # noqa: BLE001
            _broken(probe, "dispatch_finished", exc)


def client_started(kind: str, topic: str, name: str,
                   context: Mapping[str, Any]) -> tuple[Started, Mapping[str, Any]]:
    """Tell the probes a send begins; the context to send (with the carrier's
    entry added if a probe filled it, never changing the caller's mapping)."""
    started: Started = []
    carrier: dict[str, Any] = {}
    for probe in probes:
        try:
            started.append((probe, probe.client_started(kind, topic, name, carrier)))
        except Exception as exc:  # noqa: BLE001
            _broken(probe, "client_started", exc)
    if carrier:
        context = {**context, CONTEXT_KEY: carrier}
    return started, context


def client_finished(started: Started, call: ClientCall) -> None:
    for probe, token in started:
        try:
            probe.client_finished(token, call)
        except Exception as exc:  # noqa: BLE001
            _broken(probe, "client_finished", exc)


class Sending:
    """One send the probes watch (made only when some probe is registered):
    tells them when it starts and how it ends."""

    __slots__ = ("kind", "method", "since", "started", "topic")

    def __init__(self, kind: str, topic: str, method: str) -> None:
        self.kind, self.topic, self.method = kind, topic, method
        self.started: Started = []
        self.since = 0.0

    def start(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The context to send (with the probes' carrier, if any filled it)."""
        self.started, wire = client_started(self.kind, self.topic, self.method, context)
        self.since = time.monotonic()
        return dict(wire)

    def finish(self, error: BaseException | None, outcome: str | None = None) -> None:
        """Report the end: ``outcome`` defaults to ``"ok"``, ``"timeout"`` or ``"error"``."""
        if outcome is None:
            outcome = ("ok" if error is None else
                       "timeout" if isinstance(error, MessagingTimeout) else "error")
        client_finished(self.started, ClientCall(
            self.kind, self.topic, self.method, outcome, time.monotonic() - self.since, error))


#: Whether tracing may still switch itself on (until it is switched on, or
#: ``dovecote.observe.tracing.disable()`` says the application wants it off).
auto_tracing = True


def listener_reconnected(transport: str) -> None:
    for probe in probes:
        try:
            probe.listener_reconnected(transport)
        except Exception as exc:  # noqa: BLE001
            _broken(probe, "listener_reconnected", exc)


#: At most this many entries of at most this many characters are read from a carrier.
_CARRIER_ITEMS, _CARRIER_TEXT = 8, 1024
_EMPTY: Mapping[str, str] = {}
_OSLO_FIELDS = ("traceparent", "tracestate")


def take_carrier(ctxt: dict[str, Any]) -> Mapping[str, str]:
    """Take the :data:`CONTEXT_KEY` entry out of a message's wire context (so
    endpoints see the context the client passed) and return its text entries.
    Anything else a peer put there (not a dict, not text, too long) is dropped."""
    if not ctxt:
        return _EMPTY
    raw = ctxt.pop(CONTEXT_KEY, None)
    if raw is None and "traceparent" in ctxt:
        # oslo.messaging's own tracing puts W3C fields at the top of the context
        # (left there: they are its context's fields); a dovecote server joins them.
        raw = {key: ctxt[key] for key in _OSLO_FIELDS if key in ctxt}
    if not raw or not isinstance(raw, dict):
        return _EMPTY
    return {key: value for key, value in list(raw.items())[:_CARRIER_ITEMS]
            if isinstance(key, str) and isinstance(value, str)
            and len(key) <= _CARRIER_TEXT and len(value) <= _CARRIER_TEXT}


#: The context entry that carries trace context (W3C ``traceparent`` and
#: ``tracestate``) from a client to a server: ``_context_dovecote_trace`` on
#: the wire; dovecote servers take it out before endpoints see the context.
CONTEXT_KEY = "dovecote_trace"
