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
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._errors import MessagingTimeout
from ._logging import get_logger

if TYPE_CHECKING:
    from .._target import Target
    from ._view import ServerView

__all__ = [
    "UNKNOWN",
    "ClientCall",
    "Delivery",
    "Dispatched",
    "Probe",
    "Router",
    "Sending",
    "Source",
    "Started",
    "Taken",
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

log = get_logger(__name__)

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


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """What a listener knows of the messages it takes, for probes: the
    transport's ``messaging.system`` (see :attr:`Router.messaging_system`) and,
    for an RPC listener, its target's topic (set on each message it takes)."""

    system: str
    topic: str | None = None


class _Taken(Protocol):
    """A message a listener took, as :meth:`Delivery.of` reads it (a driver's
    ``IncomingMessage``: this layer names it by what it offers)."""

    message: dict[str, Any]
    msg_id: str | None
    source: Source | None

    def route(self) -> tuple[str, str, str]: ...


@dataclasses.dataclass(slots=True)
class Delivery:
    """One message of a dispatch as probes see it: the trace context it carried
    (the text entries of its :data:`CONTEXT_KEY` entry; empty if none) and where
    it came from. ``exchange``, ``routing_key`` and ``queue`` are what the driver
    knows (``""`` where it does not); ``reply`` says its sender waits for an
    answer (a call); ``namespace`` and ``event_type`` are the peer's text, only
    for a request whose method was found, or a notification."""

    carrier: Mapping[str, str]
    message_id: str | None = None
    system: str = ""
    exchange: str = ""
    routing_key: str = ""
    queue: str = ""
    topic: str | None = None
    reply: bool = False
    namespace: str | None = None
    event_type: str | None = None

    @classmethod
    def of(cls, incoming: _Taken, carrier: Mapping[str, str],
           message_id: str | None) -> Delivery:
        """What ``incoming`` tells (made only for probes that set ``wants_deliveries``)."""
        source = incoming.source
        exchange, routing_key, queue = incoming.route()
        message = incoming.message
        namespace, event_type = message.get("namespace"), message.get("event_type")
        return cls(
            carrier, message_id, source.system if source is not None else "", exchange,
            routing_key, queue, source.topic if source is not None else None,
            incoming.msg_id is not None,
            namespace if isinstance(namespace, str) else None,
            event_type if isinstance(event_type, str) else None)


#: What a hook site hands over for each message of a dispatch: the message, the
#: trace context it carried (see :func:`take_carrier`), the id its events carry.
Taken = tuple[_Taken, Mapping[str, str], "str | None"]


class Router(Protocol):
    """What a driver tells probes about where it sends (see
    :class:`dovecote.drivers.base.Driver`)."""

    @property
    def messaging_system(self) -> str: ...

    def route(self, target: Target) -> tuple[str, str]: ...


class Probe:
    """Watches the runtime; every method is optional and cheap. Methods run in
    whatever thread did the work (a worker, an endpoint actor, the caller)."""

    #: Whether :meth:`dispatch_started` needs its ``deliveries`` (made only for
    #: probes that ask: they cost a little per message); the others get ``()``.
    wants_deliveries: ClassVar[bool] = False

    def received(self, server: ServerView, kind: str, count: int) -> None:
        """The dispatcher of ``server`` got ``count`` messages from a listener."""

    def dispatch_started(self, server: ServerView | None, kind: str, name: str,
                         deliveries: Sequence[Delivery]) -> Any:
        """Dispatch of these messages (a batch: several; ``()`` unless the probe
        sets :attr:`wants_deliveries`) begins, in the thread that runs the
        endpoint. The return value comes back in :meth:`dispatch_finished`."""
        return None

    def dispatch_finished(self, token: Any, dispatched: Dispatched) -> None:
        """A dispatch ended (``token``: what :meth:`dispatch_started` returned,
        ``None`` for messages refused before dispatch began)."""

    def client_started(self, sending: Sending, carrier: dict[str, Any]) -> Any:
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
                     taken: Sequence[Taken]) -> Started:
    """Tell the probes a dispatch of the ``taken`` messages begins."""
    started: Started = []
    deliveries: list[Delivery] | None = None
    for probe in probes:
        try:
            given: Sequence[Delivery] = ()
            if probe.wants_deliveries:
                if deliveries is None:
                    deliveries = [Delivery.of(*entry) for entry in taken]
                given = deliveries
            started.append((probe, probe.dispatch_started(server, kind, name, given)))
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


def client_started(sending: Sending,
                   context: Mapping[str, Any]) -> tuple[Started, Mapping[str, Any]]:
    """Tell the probes a send begins; the context to send (with the carrier's
    entry added if a probe filled it, never changing the caller's mapping)."""
    started: Started = []
    carrier: dict[str, Any] = {}
    for probe in probes:
        try:
            started.append((probe, probe.client_started(sending, carrier)))
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
    tells them when it starts and how it ends. A ``"call"``, ``"cast"`` or
    ``"notify"`` of ``method`` (the event type of a notification) to ``topic``
    (a notifier's topics joined by commas), published by ``driver`` to
    ``target`` (``None`` when it goes to several, or to no transport), with the
    id the receiver's events will carry (``message_id``)."""

    __slots__ = ("driver", "kind", "message_id", "method", "since", "started", "target",
                 "topic")

    def __init__(self, kind: str, topic: str, method: str, *, driver: Router | None = None,
                 target: Target | None = None, message_id: str | None = None) -> None:
        self.kind, self.topic, self.method = kind, topic, method
        self.driver, self.target, self.message_id = driver, target, message_id
        self.started: Started = []
        self.since = 0.0

    def start(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The context to send (with the probes' carrier, if any filled it)."""
        self.started, wire = client_started(self, context)
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
