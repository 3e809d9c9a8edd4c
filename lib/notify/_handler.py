"""The notification handler: endpoints by priority, filters, requeue, dead letters.

A notification is acknowledged only after its endpoints return. An endpoint
exception or a ``REQUEUE`` result sends it back to its queue (with
``allow_requeue=True``), counting redeliveries; once ``max_redeliveries`` is
reached, or when requeueing is not allowed, or when the body cannot be
decoded, it is parked on ``<topic>.<priority>.dead`` with the reason. Nothing
is dropped silently, and a poison message never blocks the ones behind it.

Every delivery ends settled: a requeue or dead letter the broker refuses is
tried again after a short back-off (see :mod:`._settling`), and when that
fails too the delivery is released (given back to its queue unchanged), so the
broker delivers it again and the listener's prefetch is never used up.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._endpoints import actor_method, actor_ref_of
from .._handling import Done, Handler, HeartbeatScheduler, Job, trace_id
from .._serializer import NoOpSerializer, Serializer
from ..observe import _probes
from ..observe._fields import clip, describe, elapsed_ms, log_field
from ..observe._logging import ActorLog, actor_log, get_logger
from ._filter import NotificationFilter
from ._settling import settle_patiently

if TYPE_CHECKING:
    from ..drivers.base import IncomingMessage

__all__ = ["PRIORITIES", "NotificationHandler", "NotificationResult"]

log = get_logger(__name__)
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class NotificationResult:
    """What a notification endpoint may return (``None`` means ``HANDLED``)."""

    HANDLED = "handled"
    REQUEUE = "requeue"


Callback = Callable[..., Any]
#: An endpoint's method for a priority, its filter rule, and the endpoint.
Route = tuple[Callback, NotificationFilter | None, Any]


def _priority(message: dict[str, Any]) -> str:
    """The priority a notification body names, lower-case (``WARNING`` is ``warn``)."""
    priority = str(message.get("priority", "")).lower()
    return "warn" if priority == "warning" else priority


def _malformed(incoming: IncomingMessage) -> str | None:
    """Why ``incoming`` is not a notification at all, or ``None``. A body
    without a known priority cannot reach any endpoint: acknowledging it
    would drop it silently, so it is dead-lettered instead."""
    if incoming.error is not None:
        return incoming.error
    priority = incoming.message.get("priority")
    if not isinstance(priority, str) or _priority(incoming.message) not in PRIORITIES:
        return f"priority {clip(priority)} is not one of {', '.join(p.upper() for p in PRIORITIES)}"
    return None


class NotificationHandler(Handler):
    """Turns notifications into jobs; one job per message, or per batch.

    Everything a job does runs inside one boundary: whatever a serializer, a
    filter or an endpoint raises, each notification is acknowledged, requeued
    or parked, and logged; none is dropped, none escapes into the runtime.
    """

    kind = "notification"

    def __init__(
        self, endpoints: Iterable[Any], *, serializer: Serializer | None = None,
        allow_requeue: bool = False, max_redeliveries: int = 3, pool: str | None = None,
        batch_size: int | None = None, batch_timeout: float | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.serializer = serializer or NoOpSerializer()
        self.allow_requeue = allow_requeue
        self.max_redeliveries = max_redeliveries
        self.pool = pool
        self.batched = batch_size is not None
        self.batch_size = batch_size or 1
        self.batch_timeout = batch_timeout if self.batched else None
        self.log_fields: dict[str, Any] = {}
        self.log = ActorLog(log)
        self.callbacks: dict[str, list[Route]] = {}
        for endpoint in self.endpoints:
            ref = actor_ref_of(endpoint)
            holder = ref.actor_class if ref is not None else endpoint
            rule = getattr(holder, "filter_rule", None)
            for priority in PRIORITIES:
                name = next((n for n in (priority, "warning" if priority == "warn" else "")
                             if n and callable(getattr(holder, n, None))), None)
                if name is None:
                    continue
                callback = actor_method(ref, name) if ref is not None else getattr(
                    endpoint, name)
                self.callbacks.setdefault(priority, []).append((callback, rule, endpoint))
        self.priorities = tuple(p for p in PRIORITIES if p in self.callbacks)
        if not self.priorities:
            msg = ("no notification endpoint has a priority method "
                   f"({', '.join(PRIORITIES)}): nothing to listen for")
            raise ValueError(msg)

    def bind(
        self, log_fields: dict[str, Any], heartbeats: HeartbeatScheduler,
        endpoint_history: Any = lambda _ref: None,
    ) -> None:
        super().bind(log_fields, heartbeats, endpoint_history)
        self.log = ActorLog(log.bind(**log_fields))  # bound once: per-notification lines cheap

    def prepare(self, messages: Sequence[IncomingMessage], done: Done) -> list[Job]:
        if self.batched:
            batch = list(messages)
            return [Job(functools.partial(self._run_batch, batch), len(batch))]
        return [Job(functools.partial(self._run_one, incoming)) for incoming in messages]

    def abandon(self, incoming: IncomingMessage, error: BaseException) -> None:
        with contextlib.suppress(Exception):
            started = time.monotonic()
            outcome = self._retry_or_park(
                incoming, f"dovecote could not handle it: {describe(error)}", started)
            self._report(None, incoming, outcome, started, error=error)
        with contextlib.suppress(Exception):
            incoming.release()  # a no-op once settled above; never raises

    def _name(self, incoming: IncomingMessage) -> str:
        """The priority ``incoming`` names if an endpoint handles it (a bounded
        name for probes), else :data:`~dovecote.observe._probes.UNKNOWN`."""
        priority = _priority(incoming.message) if incoming.error is None else ""
        return priority if priority in self.callbacks else _probes.UNKNOWN

    def _report(self, probed: _probes.Started | None, incoming: IncomingMessage,
                outcome: str, started: float, *, count: int = 1, result: Any = None,
                error: BaseException | None = None, endpoints: Sequence[Any] = (),
                timed: bool = True) -> None:
        """Tell the probes how a dispatch of ``incoming`` (of its group, for a
        batch) ended; nothing is computed when none listens (the hot path)."""
        if probed is None and not _probes.probes:
            return
        _probes.dispatch_finished(probed, _probes.Dispatched(
            self.owner, "notification", self._name(incoming), outcome,
            time.monotonic() - started, result, error, tuple(endpoints), count, timed))

    def _internal_error(self, batch: Sequence[IncomingMessage], exc: Exception) -> bool:
        """The boundary's last line: a bug in dovecote (or a user object that
        cannot even be logged) gives the notifications back; it never escapes."""
        with contextlib.suppress(Exception):
            actor_log(self.log).error("dispatch.failed", outcome="error", batch=len(batch),
                                      error=describe(exc))
        for incoming in batch:
            self.abandon(incoming, exc)
        return False

    # -- one message --------------------------------------------------------------
    def _fields(self, incoming: IncomingMessage) -> dict[str, Any]:
        message = incoming.message
        return {"msg_id": log_field(message.get("message_id")),
                "event_type": log_field(message.get("event_type")),
                "publisher_id": log_field(message.get("publisher_id")), **incoming.origin}

    def _entry(self, incoming: IncomingMessage) -> dict[str, Any]:
        """The notification as endpoints get it (the serializer runs here)."""
        message = incoming.message
        ctxt = self.serializer.deserialize_context(incoming.ctxt)
        return {
            "ctxt": ctxt, "publisher_id": message.get("publisher_id"),
            "event_type": message.get("event_type"),
            "payload": self.serializer.deserialize_entity(ctxt, message.get("payload")),
            "metadata": {"message_id": message.get("message_id"),
                         "timestamp": message.get("timestamp")},
        }

    def _prepared(self, incoming: IncomingMessage, started: float,
                  probed: _probes.Started | None) -> dict[str, Any] | None:
        """The entry for ``incoming``, or ``None`` once it was parked or requeued
        (and reported) because it is malformed or the serializer refused it."""
        problem = _malformed(incoming)
        if problem is not None:
            outcome = self._park(incoming, f"malformed notification: {problem}", started)
            self._report(probed, incoming, outcome, started)
            return None
        try:
            return self._entry(incoming)
        except BaseException as exc:  # noqa: BLE001 - requeued or parked, never lost
            reason = f"the serializer could not deserialize it: {describe(exc)}"
            actor_log(self.log).error("dispatch.failed", **self._fields(incoming),
                                      outcome="error", stage="deserialize", error=describe(exc))
            outcome = self._retry_or_park(incoming, reason, started)
            self._report(probed, incoming, outcome, started, error=exc)
            return None

    def _chosen(self, rule: NotificationFilter | None, entry: dict[str, Any]) -> bool:
        """Whether ``rule`` lets ``entry`` through; a rule that raises counts as a failure."""
        if rule is None:
            return True
        return bool(rule.match(entry["ctxt"], entry["publisher_id"], entry["event_type"],
                               entry["metadata"], entry["payload"]))

    def _failed(self, stage: str, exc: BaseException, fields: dict[str, Any]) -> str:
        """Log what a filter rule or an endpoint raised; the requeue reason."""
        if stage == "filter":
            fields = {**fields, "stage": stage}
        actor_log(self.log).error("dispatch.failed", **fields, outcome="error",
                                  error=describe(exc), exc_info=exc)
        return f"{'filter_rule' if stage == 'filter' else 'endpoint'} raised {describe(exc)}"

    def _run_one(self, incoming: IncomingMessage) -> bool:
        try:
            return self._handle_one(incoming)
        except Exception as exc:  # noqa: BLE001 - the boundary
            return self._internal_error([incoming], exc)

    def _handle_one(self, incoming: IncomingMessage) -> bool:
        started = time.monotonic()
        log = actor_log(self.log)
        if log.records_debug:
            log.debug("dispatch.started", msg_id=trace_id(incoming))
        carrier = _probes.take_carrier(incoming.ctxt)
        probed = None
        if _probes.probes:
            probed = _probes.dispatch_started(
                self.owner, "notification", self._name(incoming),
                ((incoming, carrier, trace_id(incoming)),))
        entry = self._prepared(incoming, started, probed)
        if entry is None:
            return False
        requeue_reason = None
        ran: list[Any] = []
        result = error = None
        for callback, rule, endpoint in self.callbacks.get(_priority(incoming.message), ()):
            stage = "filter"
            try:
                if not self._chosen(rule, entry):
                    continue
                ran.append(endpoint)
                stage = "endpoint"
                result = callback(entry["ctxt"], entry["publisher_id"], entry["event_type"],
                                  entry["payload"], entry["metadata"])
            except BaseException as exc:  # noqa: BLE001 - requeued or parked, never lost
                requeue_reason = self._failed(stage, exc, self._fields(incoming))
                error = error or exc
                continue
            if result == NotificationResult.REQUEUE:
                requeue_reason = "endpoint asked to requeue"
        if requeue_reason is not None:
            outcome = self._retry_or_park(incoming, requeue_reason, started)
            self._report(probed, incoming, outcome, started, result=result,
                         error=error, endpoints=ran)
            return False
        incoming.acknowledge()
        outcome = "handled" if ran else "filtered"
        if log.records_debug:
            log.debug("dispatch.ok", **self._fields(incoming), outcome=outcome,
                      duration_ms=elapsed_ms(started))
        self._report(probed, incoming, outcome, started, result=result,
                     endpoints=ran)
        return True

    def _retry_or_park(self, incoming: IncomingMessage, reason: str, started: float, *,
                       patient: bool = True) -> str:
        """Requeue or park ``incoming``: ``"requeued"``, ``"dead_lettered"``, or
        ``"released"`` when the broker refused either on every try (it delivers
        it again). ``patient=False``: one try, no back-off (the rest of a batch
        whose first message already waited)."""
        if self.allow_requeue and incoming.redeliveries < self.max_redeliveries:
            if not self._settle(incoming, "requeue", incoming.requeue, reason,
                                patient=patient):
                return self._release(incoming, reason, started)
            actor_log(self.log).warning("notification.requeued", **self._fields(incoming),
                        outcome="requeued", reason=reason,
                        redeliveries=incoming.redeliveries + 1,
                        duration_ms=elapsed_ms(started))
            return "requeued"
        if self.allow_requeue:
            reason = f"{reason} (after {incoming.redeliveries} redeliveries)"
        return self._park(incoming, reason, started, patient=patient)

    def _park(self, incoming: IncomingMessage, reason: str, started: float, *,
              patient: bool = True) -> str:
        parked: list[str] = []
        if not self._settle(incoming, "dead_letter",
                            lambda: parked.append(incoming.dead_letter(reason)), reason,
                            patient=patient):
            return self._release(incoming, reason, started)
        actor_log(self.log).error("notification.dead_lettered", **self._fields(incoming),
                  outcome="dead_lettered", reason=reason, queue=parked[0],
                  duration_ms=elapsed_ms(started))
        return "dead_lettered"

    def _settle(self, incoming: IncomingMessage, what: str, settle: Callable[[], object],
                reason: str, *, patient: bool) -> bool:
        """Run ``settle`` (a requeue or a dead letter) with the settle back-off
        (see :mod:`._settling`), logging each failed try; ``False`` once every
        try failed."""
        def failed(attempt: int, retry_in: float | None, exc: Exception) -> None:
            fields = {**self._fields(incoming), "reason": reason, "attempt": attempt,
                      "retry_in": retry_in, "error": describe(exc)}
            if what == "requeue":  # literal event names: the docs' events table is checked
                actor_log(self.log).error("notification.requeue_failed", **fields)
            else:
                actor_log(self.log).error("notification.dead_letter_failed", **fields)

        return settle_patiently(settle, failed=failed, patient=patient,
                                stopping=getattr(self.owner, "stopping", None))

    def _release(self, incoming: IncomingMessage, reason: str, started: float) -> str:
        """Give ``incoming`` back to its queue unchanged: the broker delivers it
        again (to this listener or another), so nothing is lost and the
        listener's prefetch is freed. Each round of a poison message logs this."""
        incoming.release()
        actor_log(self.log).error("notification.released", **self._fields(incoming),
                                  outcome="released", reason=reason,
                                  redeliveries=incoming.redeliveries,
                                  duration_ms=elapsed_ms(started),
                                  hint="the broker refused its requeue or dead letter; "
                                       "it is delivered again")
        return "released"

    # -- batches ------------------------------------------------------------------
    def _run_batch(self, batch: list[IncomingMessage]) -> bool:
        try:
            return self._handle_batch(batch)
        except Exception as exc:  # noqa: BLE001 - the boundary
            return self._internal_error(batch, exc)

    def _handle_batch(self, batch: list[IncomingMessage]) -> bool:
        started = time.monotonic()
        log = actor_log(self.log)
        if log.records_debug:
            log.debug("dispatch.started", count=len(batch),
                      msg_ids=[trace_id(incoming) for incoming in batch])
        ok = True
        carriers = [_probes.take_carrier(incoming.ctxt) for incoming in batch]
        by_priority: dict[str, list[tuple[IncomingMessage, dict[str, Any]]]] = {}
        held: dict[str, list[Mapping[str, str]]] = {}  # the carriers of each group
        for incoming, carrier in zip(batch, carriers, strict=True):
            entry = self._prepared(incoming, started, None)
            if entry is None:
                ok = False
                continue
            priority = _priority(incoming.message)
            by_priority.setdefault(priority, []).append((incoming, entry))
            held.setdefault(priority, []).append(carrier)
        for priority, group in by_priority.items():
            probed = None
            if _probes.probes:
                probed = _probes.dispatch_started(
                    self.owner, "notification", self._name(group[0][0]), [
                        (incoming, carrier, trace_id(incoming))
                        for (incoming, _), carrier in zip(group, held[priority], strict=True)])
            ok = self._run_group(self.callbacks.get(priority, ()), group, started,
                                 probed) and ok
        return ok

    def _run_group(self, callbacks: Sequence[Route],
                   group: list[tuple[IncomingMessage, dict[str, Any]]], started: float,
                   probed: _probes.Started | None) -> bool:
        requeue_reason = None
        ran: list[Any] = []
        result = error = None
        for callback, rule, endpoint in callbacks:
            stage = "filter"
            try:
                chosen = [entry for _, entry in group if self._chosen(rule, entry)]
                stage = "endpoint"
                if chosen:
                    ran.append(endpoint)
                    result = callback(chosen)
                    if result == NotificationResult.REQUEUE:
                        requeue_reason = "endpoint asked to requeue"
            except BaseException as exc:  # noqa: BLE001 - requeued or parked, never lost
                requeue_reason = self._failed(stage, exc, {"batch": len(group)})
                error = error or exc
        first = group[0][0]
        if requeue_reason is not None:
            outcomes: collections.Counter[str] = collections.Counter()
            for incoming, _ in group:  # one back-off per group, not one per message
                outcomes[self._retry_or_park(incoming, requeue_reason, started,
                                             patient="released" not in outcomes)] += 1
            timed = True
            for outcome, count in outcomes.items():  # the first report ends the span
                self._report(probed, first, outcome, started, count=count, result=result,
                             error=error, endpoints=ran, timed=timed)
                probed = [(probe, None) for probe, _ in probed] if probed else None
                timed = False
            return False
        for incoming, _ in group:
            incoming.acknowledge()
        self._report(probed, first, "handled" if ran else "filtered", started,
                     count=len(group), result=result, endpoints=ran)
        log = actor_log(self.log)
        if log.records_debug:
            log.debug("dispatch.ok", outcome="handled", batch=len(group),
                      msg_ids=[trace_id(incoming) for incoming, _ in group],
                      duration_ms=elapsed_ms(started))
        return True
