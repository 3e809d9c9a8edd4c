"""ListenerActor: polls one driver listener and feeds the dispatcher."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any

from dovecote._target import Target
from dovecote.drivers._decoding import MAX_ID_LENGTH

from ._base import DovecoteActor, Track
from ._messages import POLL, Batch, Finish, ListenerCrashed, ListenerPaused, Poll

if TYPE_CHECKING:
    import pykka

    from dovecote._transport import Transport
    from dovecote.drivers.base import IncomingMessage, Listener

    from ._flow import CreditGate

__all__ = ["ListenerActor", "ListenerSpec"]

#: How long one poll may block: bounds how long a stop request waits.
POLL_TIMEOUT = 0.1
#: The most messages one poll takes when the handler does not batch: taking
#: what is already there in one go saves a round of actor messages per message.
POLL_SIZE = 64
#: How many recent request ids each RPC listener remembers to drop repeats
#: (oslo.messaging keeps 16; a redelivery after a lost connection can bring back
#: a whole prefetch window, 100 by default on RabbitMQ).
DUPLICATE_WINDOW = 1024


class RecentIds:
    """The last ``size`` request ids (``_unique_id``) a listener took, to drop
    a request seen again (a redelivery after a lost connection, a replay):
    RPC is at most once. Used by one listener actor at a time."""

    __slots__ = ("_order", "_seen", "size")

    def __init__(self, size: int = DUPLICATE_WINDOW) -> None:
        self.size = size
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()

    def seen(self, unique_id: str) -> bool:
        """Whether ``unique_id`` was seen before; remembers it if not."""
        if unique_id in self._seen:
            return True
        self._seen.add(unique_id)
        self._order.append(unique_id)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return False


@dataclasses.dataclass(frozen=True, eq=False)
class ListenerSpec:
    """What one listener listens to: a transport plus an RPC target, or
    notification targets with priorities and a pool. An RPC listener's recent
    request ids outlive its actor, so a restarted listener still drops repeats."""

    transport: Transport
    target: Target | None = None
    notification_targets: tuple[tuple[Target, str], ...] = ()
    pool: str | None = None
    recent: RecentIds = dataclasses.field(default_factory=RecentIds)

    def describe(self) -> str:
        """The target as text, for logs and ``server.actors()``."""
        if self.target is not None:
            return str(self.target)
        topics = sorted({f"{t.topic}.{p}" for t, p in self.notification_targets})
        pool = f" pool={self.pool}" if self.pool else ""
        return f"<Notifications {', '.join(topics)}{pool}>"

    def open(self) -> Listener:
        """Ask the driver for the listener."""
        driver = self.transport.driver
        if self.target is not None:
            return driver.listen(self.target)
        return driver.listen_for_notifications(list(self.notification_targets), self.pool)


class ListenerActor(DovecoteActor):
    """Polls its listener with a short timeout and re-sends itself a poll after
    each batch, so a stop request never waits behind a long blocking poll.
    Polls only for as many messages as the server's credit allows."""

    kind = "listener"

    def __init__(
        self, *, spec: ListenerSpec, dispatcher: pykka.ActorRef[Any], gate: CreditGate,
        batch_size: int, batch_timeout: float | None, attempt: int = 0, delay: float = 0.0,
        server_stopping: threading.Event, server: str,
        track: Track = None,
    ) -> None:
        # Opened in the caller's thread, before the actor exists: when
        # server.start() or listen() returns, the queues exist, and a failure to
        # connect is raised to the caller without leaving an actor behind.
        listener = None if delay else spec.open()
        super().__init__(track=track, server=server, listener=spec.describe(), transport=str(
            spec.transport.url))
        self.spec = spec
        self.dispatcher = dispatcher
        self.gate = gate
        self.batch_size = max(1, batch_size)
        self.batch_timeout = batch_timeout
        self.attempt = attempt
        self.delay = delay
        self.server_stopping = server_stopping
        self.listener: Listener | None = listener
        self.origin = {"listener": spec.describe(), "transport": str(spec.transport.url)}
        self._paused = False
        self.duplicates = 0
        self._batch: list[IncomingMessage] = []
        self._batch_started = 0.0

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
        self.log.info("listener.started", attempt=self.attempt)
        self.actor_ref.tell(POLL)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Poll):
            self._poll()
        elif isinstance(message, Finish):
            self._finish()
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
        want = (POLL_SIZE if self.batch_timeout is None
                else self.batch_size - len(self._batch))
        credit = self.gate.acquire(want, POLL_TIMEOUT)
        taken: list[IncomingMessage] = []
        if credit:
            timeout = POLL_TIMEOUT
            if self._batch and self.batch_timeout is not None:
                timeout = min(timeout, max(
                    0.0, self._batch_started + self.batch_timeout - time.monotonic()))
            try:
                taken = self.listener.poll(timeout, credit)
            except Exception as exc:  # noqa: BLE001 - the server restarts us with backoff
                self.gate.release(credit)
                self._crash(exc)
                return False
            self.gate.release(credit - len(taken))
        if taken and self.spec.target is not None:
            taken = self._drop_repeats(taken)
        if taken:
            for incoming in taken:
                incoming.origin = self.origin
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.extend(taken)
            self.log.debug("message.received", count=len(taken))
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
        if len(self._batch) >= self.batch_size or self.batch_timeout is None:
            return True
        return time.monotonic() - self._batch_started >= self.batch_timeout

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self.handled += len(batch)
        self.dispatcher.tell(Batch(batch))

    def _crash(self, exc: Exception) -> None:
        self.failed += 1
        self.log.error("listener.crashed", attempt=self.attempt, error=str(exc))
        if self._batch:
            self._flush()
        self._paused = True
        self.dispatcher.tell(ListenerCrashed(self.actor_ref, self.spec, self.attempt, str(exc)))

    def on_shutdown(self) -> None:
        """Stop polling; hand over a partial batch; wait for ``Finish``."""
        self._pause()

    def _pause(self) -> None:
        if self._batch:
            self._flush()
        if not self._paused and self.listener is not None:
            try:
                self.listener.stop()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                self.log.warning("listener.stop_failed", error=str(exc))
        self._paused = True
        self.log.info("listener.paused")
        self.dispatcher.tell(ListenerPaused(self.actor_ref))

    def _finish(self) -> None:
        if self.listener is not None:
            try:
                self.listener.cleanup()
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                self.log.warning("listener.cleanup_failed", error=str(exc))
            self.listener = None
        self.log.info("listener.stopped")
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        record = super().snapshot()
        record["target"] = self.spec.describe()
        record["transport"] = str(self.spec.transport.url)
        record["duplicates"] = self.duplicates
        return record
