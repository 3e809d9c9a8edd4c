"""Prometheus metrics for dovecote servers and clients: call :func:`enable` once.

:func:`enable` registers a probe (see :mod:`dovecote.observe._probes`) that counts
what servers receive and handle, times dispatches and the client's calls, and,
only when the registry is scraped, reads the in-flight messages and mailbox
depths of the running servers. Until it is called nothing here runs: the hook
sites of the runtime find no probe and skip it all. Needs ``prometheus_client``
(``pip install 'dovecote[metrics]'``).

Label values are bounded, so a peer cannot grow the number of series: a
server's method label is a method of its endpoints' table or a notification
priority it handles, else ``"<unknown>"``, never the raw name a request
carried; the client's ``topic`` and ``method`` labels come from the
application's own code, and still at most :data:`MAX_CLIENT_LABEL_SETS`
distinct pairs (and as many topics of what was sent) get their own series (an
application that builds names at run time would otherwise leak a series per
name).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.metrics_core import Metric
except ImportError as exc:  # without the extra: say how to get it
    msg = ("dovecote.observe.metrics needs prometheus_client, which is not installed: "
           "pip install 'dovecote[metrics]'")
    raise ImportError(msg, name=exc.name) from exc

from . import _probes
from ._logging import get_logger

if TYPE_CHECKING:
    from ._view import ServerView

__all__ = ["BUCKETS", "MAX_CLIENT_LABEL_SETS", "OTHER", "Metrics", "disable", "enable"]

log = get_logger(__name__)

#: Bucket bounds, in seconds, of both histograms: from 100 µs (a whole call on
#: ``memory://`` takes about that) through the milliseconds of a call over a
#: broker to 10 s (longer lands in ``+Inf``, which the ``_count`` still counts).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Distinct ``(topic, method)`` label pairs of ``dovecote_rpc_client_call_seconds``
#: per process; beyond them a call counts under ``method="<other>"`` (and
#: ``topic="<other>"`` too if its topic was not seen before). Also the distinct
#: topics of ``dovecote_messages_sent``; beyond them, ``topic="<other>"``.
MAX_CLIENT_LABEL_SETS = 1000
#: The label value of what the cap above left out.
OTHER = "<other>"
#: The server label of a dispatch whose handler serves no server.
NO_SERVER = "unknown"
#: The ``kind`` label of ``dovecote_messages_sent`` for each kind of send.
_SENT_KINDS = {"call": "call", "cast": "cast", "notify": "notification"}

M = TypeVar("M", bound=MetricWrapperBase)


def _child(cache: dict[tuple[str, ...], M], metric: M, key: tuple[str, ...]) -> M:
    """``metric.labels(*key)``, kept in ``cache`` (``labels`` is slow; a race
    between threads is harmless: both get the same child)."""
    child = cache[key] = metric.labels(*key)
    return child


class Metrics(_probes.Probe):
    """The probe :func:`enable` registers, with dovecote's metrics in ``registry``.

    Each hook finds its labelled children in a dict keyed by the label values,
    so the message path costs a tuple, a dict lookup and an increment."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.max_client_label_sets = MAX_CLIENT_LABEL_SETS
        self.messages_received = Counter(
            "dovecote_messages_received", "Messages a server's dispatcher got from its "
            "listeners (kind: rpc or notification).", ["server", "kind"], registry=None)
        self.messages_handled = Counter(
            "dovecote_messages_handled", "Messages whose dispatch ended, by method (or "
            "notification priority; <unknown> if the endpoints have none of that name) "
            "and outcome.", ["server", "kind", "method", "outcome"], registry=None)
        self.dispatch_seconds = Histogram(
            "dovecote_dispatch_seconds", "Seconds from taking a request (or a batch of "
            "notifications) to its outcome: endpoint, reply, settling.",
            ["server", "kind", "method"], buckets=BUCKETS, registry=None)
        self.call_seconds = Histogram(
            "dovecote_rpc_client_call_seconds", "Seconds an RPC client's call took, "
            "from sending to its reply or failure.", ["topic", "method", "outcome"],
            buckets=BUCKETS, registry=None)
        self.messages_sent = Counter(
            "dovecote_messages_sent", "Calls, casts and notifications clients sent "
            "(kind), by topic and outcome (for a call: how its reply came).",
            ["kind", "topic", "outcome"], registry=None)
        self.listener_reconnects = Counter(
            "dovecote_listener_reconnects", "Times a listener got its broker "
            "connection back (transport: the URL scheme).", ["transport"], registry=None)
        self.notifications_requeued = Counter(
            "dovecote_notifications_requeued", "Notifications sent back to their "
            "queue for another try.", ["server", "method"], registry=None)
        self.notifications_dead_lettered = Counter(
            "dovecote_notifications_dead_lettered", "Notifications parked on a dead "
            "letter queue.", ["server", "method"], registry=None)
        self.gauges = ServerGauges()
        self._received: dict[tuple[str, ...], Counter] = {}
        self._handled: dict[tuple[str, ...], Counter] = {}
        self._seconds: dict[tuple[str, ...], Histogram] = {}
        self._calls: dict[tuple[str, ...], Histogram] = {}
        self._reconnects: dict[tuple[str, ...], Counter] = {}
        self._parked: dict[tuple[str, ...], Counter] = {}
        self._lock = threading.Lock()  # the client's label cap
        self._call_pairs: set[tuple[str, str]] = set()
        self._call_topics: set[str] = set()
        self._capped: dict[tuple[str, ...], Histogram] = {}
        self._sent: dict[tuple[str, ...], Counter] = {}
        self._sent_topics: set[str] = set()
        self._sent_capped: dict[tuple[str, ...], Counter] = {}

    def collectors(self) -> tuple[Any, ...]:
        """What :meth:`register` puts in the registry."""
        return (self.messages_received, self.messages_handled, self.dispatch_seconds,
                self.call_seconds, self.messages_sent, self.listener_reconnects,
                self.notifications_requeued, self.notifications_dead_lettered, self.gauges)

    def register(self) -> None:
        """Put the metrics in the registry (all, or none if one name is taken)."""
        done: list[Any] = []
        try:
            for collector in self.collectors():
                self.registry.register(collector)
                done.append(collector)
        except BaseException:
            for collector in done:
                self.registry.unregister(collector)
            raise

    def unregister(self) -> None:
        """Take the metrics out of the registry (those still there)."""
        for collector in self.collectors():
            try:
                self.registry.unregister(collector)
            except KeyError:  # taken out by someone else: already done
                continue

    # -- the probe's hooks: in the threads that do the work -----------------------------
    def received(self, server: ServerView, kind: str, count: int) -> None:
        key = (server.name, kind)
        child = self._received.get(key)
        if child is None:
            child = _child(self._received, self.messages_received, key)
        child.inc(count)

    def dispatch_finished(self, token: Any, dispatched: _probes.Dispatched) -> None:
        server = dispatched.server.name if dispatched.server is not None else NO_SERVER
        kind, name, outcome = dispatched.kind, dispatched.name, dispatched.outcome
        key = (server, kind, name, outcome)
        handled = self._handled.get(key)
        if handled is None:
            handled = _child(self._handled, self.messages_handled, key)
        handled.inc(dispatched.count)
        if dispatched.timed:  # a dispatch reported in parts is timed once
            timed = (server, kind, name)
            seconds = self._seconds.get(timed)
            if seconds is None:
                seconds = _child(self._seconds, self.dispatch_seconds, timed)
            seconds.observe(dispatched.seconds)
        if outcome in {"requeued", "dead_lettered"} and kind == "notification":
            which = (outcome, server, name)
            parked = self._parked.get(which)
            if parked is None:
                metric = (self.notifications_requeued if outcome == "requeued"
                          else self.notifications_dead_lettered)
                parked = self._parked[which] = metric.labels(server, name)
            parked.inc(dispatched.count)

    def client_finished(self, token: Any, call: _probes.ClientCall) -> None:
        key = (_SENT_KINDS.get(call.kind, call.kind), call.topic, call.outcome)
        sent = self._sent.get(key)
        if sent is None:
            sent = self._sent_child(key)
        sent.inc()
        if call.kind != "call":
            return
        child = self._calls.get((call.topic, call.name, call.outcome))
        if child is None:
            child = self._call_child(call.topic, call.name, call.outcome)
        child.observe(call.seconds)

    def _call_child(self, topic: str, method: str, outcome: str) -> Histogram:
        """The series of a call not seen yet: its own while fewer than
        ``max_client_label_sets`` pairs have one (then cached), else
        ``<other>``'s (not cached by the raw names: they are unbounded)."""
        with self._lock:
            pair = (topic, method)
            if pair in self._call_pairs or len(self._call_pairs) < self.max_client_label_sets:
                self._call_pairs.add(pair)
                self._call_topics.add(topic)
                return _child(self._calls, self.call_seconds, (topic, method, outcome))
            key = (topic if topic in self._call_topics else OTHER, OTHER, outcome)
            child = self._capped.get(key)
            if child is None:
                child = _child(self._capped, self.call_seconds, key)
            return child

    def _sent_child(self, key: tuple[str, str, str]) -> Counter:
        """The series of a send not seen yet: its own (then cached) while fewer
        than ``max_client_label_sets`` topics have one, else ``<other>``'s."""
        kind, topic, outcome = key
        with self._lock:
            if topic in self._sent_topics or len(self._sent_topics) < self.max_client_label_sets:
                self._sent_topics.add(topic)
                return _child(self._sent, self.messages_sent, key)
            capped = (kind, OTHER, outcome)
            child = self._sent_capped.get(capped)
            if child is None:
                child = _child(self._sent_capped, self.messages_sent, capped)
            return child

    def listener_reconnected(self, transport: str) -> None:
        key = (transport,)
        child = self._reconnects.get(key)
        if child is None:
            child = _child(self._reconnects, self.listener_reconnects, key)
        child.inc()


_IN_FLIGHT = ("dovecote_in_flight", (
    "Messages a running server took from its transports and has not finished "
    "(at most its max_in_flight)."))
_MAILBOX = ("dovecote_mailbox_depth", (
    "Messages waiting in the mailboxes of a running server's actors, summed per kind "
    "of actor (listener, dispatcher, worker; endpoint: the application's endpoint actors)."))


class ServerGauges:
    """A collector: ``dovecote_in_flight`` and ``dovecote_mailbox_depth`` of the
    running servers, read when the registry is scraped (nothing on the message
    path). Servers of the same name add up. It never blocks on a server and
    never raises: a server it cannot read is left out (and logged once)."""

    def __init__(self) -> None:
        self._failed: set[type[BaseException]] = set()

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(*_IN_FLIGHT, labels=["server"]),
                GaugeMetricFamily(*_MAILBOX, labels=["server", "actor"])]

    def collect(self) -> Iterable[Metric]:
        in_flight: dict[str, int] = {}
        depths: dict[tuple[str, str], int] = {}
        try:
            servers = _probes.live_servers()
        except Exception as exc:  # noqa: BLE001 - a scrape never fails because of us
            self._broken(exc)
            servers = []
        for server in servers:
            try:
                self._read(server, in_flight, depths)
            except Exception as exc:  # noqa: BLE001 - the others are still reported
                self._broken(exc)
        flights = GaugeMetricFamily(*_IN_FLIGHT, labels=["server"])
        for name, count in in_flight.items():
            flights.add_metric([name], count)
        mailboxes = GaugeMetricFamily(*_MAILBOX, labels=["server", "actor"])
        for (name, kind), count in depths.items():
            mailboxes.add_metric([name, kind], count)
        return [flights, mailboxes]

    @staticmethod
    def _read(server: ServerView, in_flight: dict[str, int],
              depths: dict[tuple[str, str], int]) -> None:
        if not server.running:
            return
        name = str(server.name)
        in_flight[name] = in_flight.get(name, 0) + server.in_flight
        for kind, depth in server.mailbox_depths().items():
            depths[name, kind] = depths.get((name, kind), 0) + depth

    def _broken(self, exc: Exception) -> None:
        if type(exc) not in self._failed:  # once per kind of failure: never a flood
            self._failed.add(type(exc))
            log.error("metrics.collect_failed", error=repr(exc)[:300])


_lock = threading.Lock()
_enabled: Metrics | None = None


def enable(registry: CollectorRegistry | None = None) -> Metrics:
    """Count and time dovecote's work in ``registry`` (default: prometheus_client's
    ``REGISTRY``) from now on, in the whole process; returns the probe, whose
    attributes are the metric objects. Enabled already on ``registry``: the same
    probe again (nothing counts twice). On another registry: ``ValueError``."""
    global _enabled  # noqa: PLW0603 - one probe per process, swapped under the lock
    target = prometheus_client.REGISTRY if registry is None else registry
    with _lock:
        if _enabled is not None:
            if _enabled.registry is target:
                return _enabled
            msg = "dovecote metrics are enabled on another registry: call disable() first"
            raise ValueError(msg)
        metrics = Metrics(target)
        metrics.register()
        _probes.add_probe(metrics)
        _enabled = metrics
        return metrics


def disable() -> None:
    """Stop counting and take the metrics out of their registry (not enabled:
    nothing happens). Dispatches under way may still finish into the old
    metric objects, which nothing reports any more."""
    global _enabled
    with _lock:
        metrics, _enabled = _enabled, None
        if metrics is not None:
            _probes.remove_probe(metrics)
            metrics.unregister()
