"""The kombu driver's listener: one kombu connection, channel and consumer per
listener, drained by :meth:`KombuListener.poll` in the polling actor's thread.

py-amqp connections are not thread-safe (and TLS sockets cannot be read and
written from two threads at once), so everything that touches a listener's
connection happens under its lock: ``poll`` holds it while it drains, and a
notification settled from a worker thread while ``poll`` runs is queued and
acknowledged by the next drain instead of writing to the socket itself.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import amqp.exceptions

from ...observe import _probes
from ...observe._logging import get_logger
from .._buffered import Wakeup, drain, more_ready
from .._decoding import ERROR_HEADER, REDELIVERIES_HEADER, ROUTING_KEY_HEADER, unpack
from .._tls import TLSRefused
from ..base import IncomingMessage, Listener
from ._entities import StreamOffsets
from ._incoming import KombuIncomingMessage
from ._options import Consumer, connection_errors
from ._redis import subscribe_now

if TYPE_CHECKING:
    from ._broker import KombuBroker

__all__ = [
    "ERROR_HEADER",
    "REDELIVERIES_HEADER",
    "ROUTING_KEY_HEADER",
    "KombuIncomingMessage",
    "KombuListener",
]


log = get_logger(__name__)


class KombuListener(Listener):
    """Consumes a set of queues on a connection of its own; reconnects (and
    re-declares them, the fanout queue under the same name) when it is lost.

    ``forget`` is called with the listener once it was cleaned up (the driver
    need not close it any more)."""

    def __init__(
        self, broker: KombuBroker, queues: Sequence[Any], *, notifications: bool,
        name: str, forget: Callable[[KombuListener], None],
    ) -> None:
        self.broker = broker
        self.notifications = notifications
        self.name = name
        self.queues = tuple(queues)
        self._forget = forget
        opts = broker.opts
        self._conn = broker.new_connection("listen")
        self._errors = connection_errors(self._conn)
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._closed = False
        self._connected = False
        self._channel: Any = None  # the consuming channel, once connected
        self._generation = 0
        self._buffer: collections.deque[tuple[str, Any, int]] = collections.deque()
        #: (raw message, channel generation, release rather than acknowledge)
        self._settlements: queue.SimpleQueue[tuple[Any, int, bool]] = queue.SimpleQueue()
        #: Set by a settlement the listener's thread must send (it holds the connection).
        self._wakeup = Wakeup() if notifications else None
        #: Settlements queued before the waiting listener is woken to send them
        #: (a quarter of the prefetch window; never, without one): see :meth:`settle`.
        self._wake_at = max(1, opts.prefetch_count // 4) if opts.prefetch_count > 0 else 0
        #: Notifications: delivery tags on the current channel not acknowledged yet.
        self._unacked: set[int] = set()
        #: ``rabbit_stream_fanout``: where each stream resumes after a reconnection.
        self._offsets = StreamOffsets(self.queues)
        self._backoff = opts.backoff()
        self._next_attempt = 0.0
        #: When the connection was lost (``time.monotonic()``), until it is back.
        self._down_since: float | None = None
        #: Requests: the highest delivery tag acknowledged on the current channel.
        self._acked_tag = 0
        with self._lock:
            try:
                self._consume(opts.retry_policy(opts.listen_retries))
            except TLSRefused:
                self._conn.release()
                raise
            except self._errors as exc:
                self._conn.release()
                raise broker.failure(f"Could not listen for {name}", exc) from None

    # -- connection -----------------------------------------------------------
    def _consume(self, policy: dict[str, Any]) -> None:
        """Connect, declare every queue with its bindings, and start consuming."""
        self._conn.ensure_connection(errback=self.broker.on_connection_error, **policy)
        channel = self._channel = self._conn.channel()
        if self.broker.opts.prefetch_count:
            channel.basic_qos(0, self.broker.opts.prefetch_count, False)
        generation = self._generation + 1
        self._unacked.clear()
        for declared in self.queues:
            declared(channel).declare()
        for declared in self.queues:
            declared.consumer_arguments = self._offsets.consumer_arguments(declared.name)
            Consumer(
                channel, queues=[declared], no_ack=False, auto_declare=False,
                on_message=functools.partial(self._on_message, declared.name, generation),
            ).consume()
        if not self.broker.is_amqp:  # kombu's Redis: a fanout reaches only subscribers
            subscribe_now(channel, self.broker.opts.connect_timeout)
        self._generation = generation
        self._acked_tag = 0
        self._connected = True
        self._backoff.opened()

    def _on_message(self, queue_name: str, generation: int, raw: Any) -> None:
        self._buffer.append((queue_name, raw, generation))
        if self.notifications and self.broker.is_amqp:
            self._unacked.add(raw.delivery_tag)

    def _lost(self, exc: BaseException) -> None:
        """Forget the dead connection: what it delivered and did not settle goes
        back to its queue at the broker, so the buffer is dropped too."""
        self._connected = False
        self._buffer.clear()
        self._unacked.clear()
        self._next_attempt = time.monotonic() + self._backoff.lost()
        if self._down_since is None:
            self._down_since = time.monotonic()
        if isinstance(exc, amqp.exceptions.ConsumerCancelled):
            self._offsets.reset()  # a deleted stream: its offsets start over
        log.warning(
            "listener.connection_lost", transport=str(self.broker.url), listener=self.name,
            error=self.broker.scrub(f"{type(exc).__name__}: {exc}"),
        )
        try:
            self._conn.collect()
        except Exception:  # noqa: BLE001 - the connection is already broken
            log.debug("listener.collect_failed", listener=self.name)

    def _reconnect(self, timeout: float) -> bool:
        """One reconnection attempt, after the back-off since the last one has
        passed (waiting at most ``timeout`` for it, or until stopped)."""
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            self._stopped.wait(min(timeout, wait))
            if self._stopped.is_set() or time.monotonic() < self._next_attempt:
                return False
        log.info(
            "listener.reconnecting", transport=str(self.broker.url), listener=self.name,
        )
        try:
            self._consume(self.broker.opts.retry_policy(0))
        except self._errors as exc:
            wait = self._backoff.failed()
            log.warning(
                "listener.reconnect_failed", transport=str(self.broker.url),
                listener=self.name, retry_in=round(wait, 3),
                error=self.broker.scrub(f"{type(exc).__name__}: {exc}"),
            )
            self._next_attempt = time.monotonic() + wait
            try:
                self._conn.collect()
                self._conn.maybe_switch_next()
            except Exception:  # noqa: BLE001 - best effort on a broken connection
                log.debug("listener.switch_failed", listener=self.name)
            return False
        down_for = time.monotonic() - (self._down_since or time.monotonic())
        self._down_since = None
        # A warning, as the loss was: whoever saw that sees its end.
        log.warning("listener.reconnected", transport=str(self.broker.url), listener=self.name,
                    down_for=round(down_for, 3))
        if _probes.probes:
            _probes.listener_reconnected(self.broker.url.scheme)
        return True

    # -- settling ---------------------------------------------------------------
    def settle(self, raw: Any, generation: int, *, release: bool = False) -> None:
        """Acknowledge ``raw`` (with ``release``: reject it with requeue, so the
        broker delivers it again) now if the connection is free, else queue it
        for the thread that is draining it. Never raises: a settlement that
        cannot be sent costs the channel, and the broker gives back everything
        on it that was not settled."""
        settlements = self._settlements
        settlements.put((raw, generation, release))
        if self._lock.acquire(blocking=False):
            try:
                self._flush()
            except Exception as exc:  # noqa: BLE001 - unsent: recycle the channel, never raise
                self._lost(exc)
            finally:
                self._lock.release()
        elif self._wakeup is not None and self._wake_at and settlements.qsize() >= self._wake_at:
            # The listener's thread holds the connection, waiting on the broker,
            # which sends nothing more once the prefetch window is full of
            # unsettled deliveries: wake it to send these. Not for each one (a
            # thread wake-up per message); fewer wait for its next drain, at
            # most one poll timeout away, or for the next delivery.
            self._wakeup.set()

    def _flush(self) -> None:
        """Send every queued settlement (under the lock). Deliveries from a lost
        channel are skipped: the broker already gave them back. Releases go
        first, each on its own (``basic.reject`` with requeue), so no
        ``multiple`` ack below can cover one. Acknowledgements below every
        delivery still unsettled go in one ``multiple`` ack; the others (settled
        out of order) one by one, so none waits on a slow one."""
        settled: list[int] = []
        released: list[int] = []
        channel: Any = None
        while True:
            try:
                raw, generation, release = self._settlements.get_nowait()
            except queue.Empty:
                break
            if generation != self._generation or not self._connected:
                log.debug("listener.ack_skipped", listener=self.name,
                          reason="its channel was lost; the broker redelivers it")
                continue
            if not self.broker.is_amqp:  # other kombu transports: no ``multiple``
                if release:
                    raw.reject(requeue=True)
                else:
                    raw.ack()
                continue
            (released if release else settled).append(raw.delivery_tag)
            channel = raw.channel
        if not settled and not released:
            return
        unacked = self._unacked
        unacked.difference_update(settled)
        unacked.difference_update(released)
        for tag in released:
            channel.basic_reject(tag, requeue=True)
        floor = min(unacked) if unacked else None
        below = [tag for tag in settled if floor is None or tag < floor]
        if below:
            channel.basic_ack(max(below), multiple=True)
        for tag in settled:
            if floor is not None and tag > floor:
                channel.basic_ack(tag)

    # -- Listener ---------------------------------------------------------------
    def poll(self, timeout: float, max_messages: int) -> list[IncomingMessage]:
        if self._stopped.is_set():
            return []
        with self._lock:
            if self._closed:
                return []
            try:
                self._flush()
                if not self._connected and not self._reconnect(timeout):
                    return []
                self._drain(time.monotonic() + timeout, max_messages)
                self._conn.heartbeat_check()
                return self._take(max_messages)
            except self._errors as exc:
                self._lost(exc)
                return []

    def keepalive(self, timeout: float) -> None:
        """Read what the broker sent (heartbeats; deliveries wait in the buffer,
        at most ``prefetch_count``), send queued acknowledgements and our own
        heartbeats, for up to ``timeout`` seconds; a lost connection is noticed
        here and reopened by the next :meth:`poll`."""
        with self._lock:
            if self._connected and not self._closed:
                try:
                    self._flush()
                    with contextlib.suppress(TimeoutError):
                        self._conn.drain_events(timeout=timeout)
                    self._flush()
                    self._conn.heartbeat_check()
                except self._errors as exc:
                    self._lost(exc)
                return
        super().keepalive(timeout)  # nothing to service: just wait

    def _drain(self, deadline: float, max_messages: int) -> None:
        """Wait (until ``deadline``) for a first message, then take only what has
        already arrived (a non-blocking drain): a lone request is never held
        back waiting for company, and a burst is still taken in one poll."""
        while len(self._buffer) < max_messages and not self._stopped.is_set():
            if self._buffer:
                if not more_ready(self._conn):
                    return  # the rest of a burst is in the buffer or still on its way
                wait = 0.0
            else:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return
            try:
                drain(self._conn, wait, wakeup=self._wakeup)
            except TimeoutError:
                if self._buffer:
                    return
            self._flush()

    def _take(self, max_messages: int) -> list[IncomingMessage]:
        taken = [self._buffer.popleft() for _ in range(min(max_messages, len(self._buffer)))]
        if taken and not self.notifications and not self.broker.is_amqp:
            out: list[IncomingMessage] = []  # no ``multiple`` ack there: one by one
            for queue_name, raw, generation in taken:
                try:
                    raw.ack()
                except self._errors as exc:
                    self._lost(exc)  # not acknowledged: the broker redelivers it
                    break
                out.append(self._decode(queue_name, raw, generation))
            return out
        if taken and not self.notifications:
            try:
                self._ack_requests([raw for _queue, raw, _generation in taken])
            except self._errors as exc:
                self._lost(exc)  # none acknowledged: the broker redelivers them all
                return []
        if self._offsets:
            # A stream resumes after what was handed over: not after what was only
            # buffered, nor after a batch whose acknowledgement failed (dropped above).
            for queue_name, raw, _generation in taken:
                self._offsets.seen(queue_name, raw.headers)
        return [self._decode(queue_name, raw, generation)
                for queue_name, raw, generation in taken]

    def _ack_requests(self, taken: list[Any]) -> None:
        """Requests are at most once, acknowledged when taken: one ``multiple``
        ack covers the batch when its deliveries are exactly the ones since the
        last ack on this channel (the usual case); a ``multiple`` ack never
        covers a delivery that was not taken, so otherwise each is acknowledged
        on its own."""
        tags = [raw.delivery_tag for raw in taken]
        channel = taken[-1].channel
        if tags == list(range(self._acked_tag + 1, self._acked_tag + 1 + len(tags))):
            channel.basic_ack(tags[-1], multiple=True)
        else:
            log.warning("listener.delivery_gap", listener=self.name, after=self._acked_tag,
                        tags=tags[:10], hint="acknowledged one by one")
            for tag in tags:
                channel.basic_ack(tag)
        self._acked_tag = max(self._acked_tag, tags[-1])

    def _decode(self, queue_name: str, raw: Any, generation: int) -> KombuIncomingMessage:
        decoded = unpack(raw.body, notifications=self.notifications, headers=raw.headers,
                         content_encoding=raw.content_encoding,
                         unreadable=getattr(raw, "unreadable", None))
        if decoded.error is not None:
            log.warning("message.malformed", listener=self.name, queue=queue_name,
                        reason=decoded.error)
        settle = self.settle if self.notifications else None  # requests: acknowledged
        return KombuIncomingMessage(self.broker, settle, queue_name, raw, generation,
                                    **decoded._asdict())

    def _delete_temporary(self) -> None:
        """Delete this listener's own fanout queue (not auto-delete: see
        ``Entities.fanout_queue``), as oslo.messaging does on close."""
        temporary = [queue for queue in self.queues if self.broker.entities.temporary(queue)]
        if not temporary or not self._connected:
            return
        try:
            # Close the consuming channel first: deleting a queue someone still
            # consumes makes the broker cancel that consumer, which py-amqp
            # raises in the middle of waiting for the delete's answer.
            self._channel.close()
            channel = self._conn.default_channel
            for declared in temporary:
                channel.queue_delete(declared.name)
        except self._errors as exc:
            log.debug("listener.delete_failed", listener=self.name,
                      error=self.broker.scrub(str(exc)))

    def stop(self) -> None:
        self._stopped.set()

    def cleanup(self) -> None:
        self.stop()
        with self._lock:
            if self._closed:
                return
            try:
                if self._connected:
                    self._flush()
            except self._errors as exc:
                log.warning("listener.ack_failed", listener=self.name,
                            error=self.broker.scrub(str(exc)))
            self._closed = True
            self._buffer.clear()
            self._delete_temporary()
            try:
                self._conn.release()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("listener.close_failed", listener=self.name)
            if self._wakeup is not None:
                self._wakeup.close()
        self._forget(self)

