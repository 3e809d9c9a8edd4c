"""ListenerActor: polls one driver listener and feeds the dispatcher."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from .._handling import trace_id
from ..drivers._decoding import MAX_ID_LENGTH
from ..observe._control import CONTROL_NAMESPACE
from ..observe._fields import describe
from ..observe._probes import Source
from ._base import DovecoteActor, Track, tell
from ._flow import InFlight
from ._messages import POLL, Batch, ListenerCrashed, ListenerDone, Poll
from ._spec import ListenerSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    import pykka

    from ..drivers.base import IncomingMessage, Listener
    from ._flow import CreditGate

__all__ = ["ListenerActor"]

#: How long one poll may block: bounds how long a stop request waits.
POLL_TIMEOUT = 0.1
#: The most messages one poll takes when the handler does not batch: taking
#: what is already there in one go saves a round of actor messages per message.
POLL_SIZE = 64
#: Never set: waiting on it is a bounded pause.
_NEVER = threading.Event()
class ListenerActor(DovecoteActor):
    """Polls its listener with a short timeout and re-sends itself a poll after
    each batch, so a stop request never waits behind a long blocking poll.
    With the ``"threading"`` executor it hands each batch over by running the
    dispatcher's ``accept`` itself (jobs queued, a worker woken: one thread
    wake-up fewer per message than a trip through the dispatcher's mailbox);
    with ``"blocking"`` the batch goes to the dispatcher, which runs it.
    Polls only for as many messages as the server's credit allows; without
    credit it keeps the driver's connection serviced (``keepalive``).

    A listener that stops taking (removed, crashed, or its server stopping)
    goes on servicing its connection until every message it took is finished,
    then closes its driver listener and tells the dispatcher it is done: the
    same drain whatever the reason.
    """

    kind = "listener"

    def __init__(
        self, *, spec: ListenerSpec, dispatcher: pykka.ActorRef[Any], gate: CreditGate,
        batched: bool, batch_size: int, batch_timeout: float | None, attempt: int = 0,
        delay: float = 0.0, server_stopping: threading.Event, server: str,
        track: Track = None, history: int = 0,
        hand_off: Callable[[list[IncomingMessage], InFlight], None] | None = None,
    ) -> None:
        # Opened in the caller's thread, before the actor exists: when
        # server.start() or listen() returns, the queues exist, and a failure to
        # connect is raised to the caller without leaving an actor behind.
        listener = None if delay else spec.open()
        super().__init__(track=track, history=history, server=server,
                         listener=spec.describe(), transport=str(spec.transport.url))
        self.spec = spec
        self.dispatcher = dispatcher
        #: The dispatcher's ``accept``, run in this thread (``"threading"``);
        #: ``None``: batches go to the dispatcher's mailbox (``"blocking"``).
        self.hand_off = hand_off
        self.gate = gate
        self.batched = batched
        self.batch_size = max(1, batch_size)
        self.batch_timeout = batch_timeout if batched else None
        self.attempt = attempt
        self.delay = delay
        self.server_stopping = server_stopping
        self.listener: Listener | None = listener
        self.origin = {"listener": spec.describe(), "transport": str(spec.transport.url)}
        self.source = Source(spec.transport.driver.messaging_system,
                             spec.target.topic if spec.target is not None else None)
        self.inflight = InFlight()
        self.duplicates = 0
        self._paused = False
        self._done = False
        self._batch: list[IncomingMessage] = []
        self._batch_started = 0.0
        self._started = time.monotonic()


    @property
    def taken(self) -> int:
        """Messages this listener took and the server has not finished: handed
        on, or in a batch still filling (read from any thread, without a lock)."""
        return self.inflight.count + len(self._batch)
    def on_start(self) -> None:
        super().on_start()
        if self.listener is None:
            self.log.info("listener.restarting", attempt=self.attempt, delay_s=self.delay)
            if self.server_stopping.wait(self.delay):
                self._pause()
                return
            try:
                self.listener = self.spec.open()
            except Exception as exc:  # noqa: BLE001 - the server restarts us with backoff
                self._crash(exc)
                return
        self._started = time.monotonic()
        self.log.info("listener.started", attempt=self.attempt)
        self.actor_ref.tell(POLL)

    def on_message(self, message: Any) -> Any:
        if isinstance(message, Poll):
            if self._paused:
                self._drain()
            else:
                self._poll()
        return None

    def _poll(self) -> None:
        # Poll again at once while nothing else waits in the mailbox: a stop
        # request is still seen after at most one poll, and a busy listener
        # skips a trip through its own mailbox per poll.
        while self._poll_once():
            if not self.actor_inbox.empty():
                self.actor_ref.tell(POLL)
                return

    def _poll_once(self) -> bool:
        """One poll; ``False`` once the listener stopped polling (paused, crashed)."""
        if self._paused or self.listener is None:
            return False
        want = self.batch_size - len(self._batch) if self.batched else POLL_SIZE
        credit = self.gate.acquire(want, POLL_TIMEOUT)
        taken: list[IncomingMessage] = []
        try:
            # The application cleaned the transport up under a running server:
            # crash (logged, restarted with backoff) rather than poll a closed one.
            self.spec.transport.driver.ensure_open("keep listening")
            if credit:
                timeout = POLL_TIMEOUT
                if self._batch and self.batch_timeout is not None:
                    timeout = min(timeout, max(
                        0.0, self._batch_started + self.batch_timeout - time.monotonic()))
                taken = self.listener.poll(timeout, credit)
            else:  # the server holds all it may: keep the connection alive meanwhile
                self.listener.keepalive(0)
        except Exception as exc:  # noqa: BLE001 - the server restarts us with backoff
            self.gate.release(credit)
            self._crash(exc)
            return False
        self.gate.release(credit - len(taken))
        if taken and self.spec.target is not None:
            taken = self._drop_repeats(taken)
        if taken:
            origin, source = self.origin, self.source
            for incoming in taken:
                incoming.origin, incoming.source = origin, source
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.extend(taken)
            if self.log.records_debug:
                ids = []
                for incoming in taken:
                    if incoming.message.get("namespace") == CONTROL_NAMESPACE:
                        incoming.quiet = True  # inspecting must not push the history out
                    else:
                        ids.append(trace_id(incoming))
                if ids:
                    self.log.debug_fields("message.received", {"count": len(ids),
                                                               "msg_ids": ids})
        if self._batch and self._batch_due():
            self._flush()
        return True

    def _drop_repeats(self, taken: list[IncomingMessage]) -> list[IncomingMessage]:
        """Requests whose ``_unique_id`` this listener saw before are dropped
        (already acknowledged: RPC is at most once) and logged."""
        fresh = []
        for incoming in taken:
            unique_id = incoming.message.get("_unique_id")
            if (isinstance(unique_id, str) and len(unique_id) <= MAX_ID_LENGTH
                    and self.spec.recent.seen(unique_id)):
                self.duplicates += 1
                self.log.warning("message.duplicate", msg_id=incoming.msg_id,
                                 unique_id=unique_id, outcome="dropped",
                                 reason="a request with this _unique_id was already taken")
            else:
                fresh.append(incoming)
        self.gate.release(len(taken) - len(fresh))
        return fresh

    def _batch_due(self) -> bool:
        if not self.batched or len(self._batch) >= self.batch_size:
            return True
        if self.batch_timeout is None:
            return False  # oslo.messaging's meaning: wait until batch_size arrived
        return time.monotonic() - self._batch_started >= self.batch_timeout

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self.handled += len(batch)
        self.inflight.add(len(batch))
        if self.hand_off is not None:
            self.hand_off(batch, self.inflight)
        else:
            tell(self.dispatcher, Batch(batch, self.inflight))

    def _crash(self, exc: Exception) -> None:
        self.failed += 1
        self.log.error("listener.crashed", attempt=self.attempt, error=describe(exc))
        tell(self.dispatcher, ListenerCrashed(
            self.actor_ref, self.spec, self.attempt, describe(exc),
            time.monotonic() - self._started))
        self._pause()

    def on_shutdown(self) -> None:
        """Stop taking; finish what was taken (see :meth:`_drain`); then close."""
        self._pause()

    def _pause(self) -> None:
        if self._paused:
            return
        if self._batch:
            self._flush()
        if self.listener is not None:
            try:
                self.listener.stop()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                self.log.warning("listener.stop_failed", error=describe(exc))
        self._paused = True
        self.log.info("listener.paused", in_flight=self.inflight.count)
        self.actor_ref.tell(POLL)

    def _drain(self) -> None:
        """Paused: service the connection until everything taken is finished
        (settlements still reach the broker), then close and say so (once)."""
        if self._done:
            return
        if self.inflight.count > 0:
            try:
                if self.listener is None:
                    _NEVER.wait(POLL_TIMEOUT)
                else:
                    self.listener.keepalive(POLL_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the connection may be gone: wait
                self.log.debug("listener.keepalive_failed", error=describe(exc))
                _NEVER.wait(POLL_TIMEOUT)
            if self.inflight.count > 0:
                self.actor_ref.tell(POLL)
                return
        if self.listener is not None:
            try:
                self.listener.cleanup()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                self.log.warning("listener.cleanup_failed", error=describe(exc))
            self.listener = None
        self._done = True
        self.log.info("listener.stopped")
        tell(self.dispatcher, ListenerDone(self.actor_ref))
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        record = super().snapshot()
        record["target"] = self.spec.describe()
        record["transport"] = str(self.spec.transport.url)
        record["duplicates"] = self.duplicates
        record["in_flight"] = self.inflight.count
        return record
