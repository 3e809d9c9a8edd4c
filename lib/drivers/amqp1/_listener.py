"""Listeners of the ``amqp1://`` driver: one Proton connection per listener,
driven by the thread that calls :meth:`Amqp1Listener.poll`.

Settling a message is a Proton call, and Proton is not thread-safe, so
``acknowledge()``, ``requeue()``, ``dead_letter()`` and ``release()`` (which run
in worker threads) only queue the settlement; the polling thread applies the queue at
the start of every poll (at most one poll interval later) and at cleanup.
Replies, requeues and dead letters are *published* through the broker's
shared, locked :class:`~._sending.SendChannel`, from any thread. A listener
and its messages are given the driver's :class:`~._broker.Amqp1Broker`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from proton import Delivery, Timeout

from ..._errors import MessageDeliveryFailure
from ...observe import _probes
from .._decoding import (
    ERROR_HEADER,
    REDELIVERIES_HEADER,
    ROUTING_KEY_HEADER,
    first_routing_key,
    unpack,
)
from ..base import SERVER_RETRIES, IncomingMessage, Listener
from ._connection import (
    TRANSIENT_ERRORS,
    Inbox,
    check_open,
    close_quietly,
    content_encoding,
    describe,
)

if TYPE_CHECKING:
    from proton.utils import BlockingConnection, BlockingReceiver

    from ._address import Source
    from ._broker import Amqp1Broker

__all__ = [
    "ERROR_PROPERTY",
    "REDELIVERIES_PROPERTY",
    "ROUTING_KEY_PROPERTY",
    "Amqp1IncomingMessage",
    "Amqp1Listener",
]

#: Application properties dovecote sets (the names the other drivers use as headers).
REDELIVERIES_PROPERTY = REDELIVERIES_HEADER
ERROR_PROPERTY = ERROR_HEADER
#: The routing key (subject) a notification first arrived with: a requeue sends it
#: to its queue by name, which replaces the subject, and a dead letter of a pool
#: member must still go to ``<topic>.<priority>.dead``.
ROUTING_KEY_PROPERTY = ROUTING_KEY_HEADER
#: Reactor passes :func:`_pump` runs at most.
_PUMP_PASSES = 8


def _pump(conn: BlockingConnection, *, until_written: bool) -> None:
    """Run Proton's reactor a few passes without waiting (each pass handles the
    events, the next one the socket): reads what arrived (heartbeats, a close)
    and writes what is queued (dispositions, our own heartbeats). With
    ``until_written``, stop as soon as nothing is left to write: a request
    accepted when taken must reach the broker now, not at the next poll (RPC is
    at most once)."""
    transport = conn.conn.transport if conn.conn is not None else None
    if transport is None:
        return
    container = conn.container
    saved = container.timeout
    container.timeout = 0  # the reactor's select does not wait
    try:
        for _ in range(_PUMP_PASSES):
            if until_written and transport.pending() <= 0:
                return
            container.process()
    finally:
        container.timeout = saved


def _subject(message: Any) -> str | None:
    """The message's subject (its routing key), ``None`` if it is not text."""
    try:
        subject = message.subject
    except Exception:  # noqa: BLE001 - bytes a peer sent that are not UTF-8
        return None
    return subject if isinstance(subject, str) else None


class Amqp1IncomingMessage(IncomingMessage):
    """A request or notification taken by an :class:`Amqp1Listener`. It holds
    no Proton object: its delivery stays with the listener, under a token, so
    Proton's objects live and die in the listener's thread only."""

    __slots__ = ("_body", "_generation", "_listener", "_properties", "_settled", "_source",
                 "_subject", "_token")

    def __init__(
        self, listener: Amqp1Listener, source: Source, raw: Any, token: int | None,
        generation: int, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._listener = listener
        self._source = source
        # Republished as it came (requeue, dead letter): an AMQP value JSON cannot
        # hold stays what it was, and Proton encodes it again.
        self._body: object = raw.body
        self._subject = _subject(raw)
        self._properties: dict[str, Any] = dict(raw.properties or {})
        self._token = token
        self._generation = generation
        self._settled = token is None

    def route(self) -> tuple[str, str, str]:
        """The subject as routing key, the exchange of the queue's binding for
        it (AMQP 1.0 names no exchange), the queue (else the source address)."""
        key, queue = self._subject or "", self._source.queue
        exchange = next((b.exchange for b in queue.bindings if b.routing_key == key), "") \
            if queue is not None else ""
        return exchange, key, queue.name if queue is not None else self._source.address

    def publish_reply(self, reply_q: str, data: str) -> None:
        broker = self._listener.broker
        broker.sender.publish(broker.plan.queue(reply_q), data, retry=SERVER_RETRIES)

    def acknowledge(self) -> None:
        if self._settled:
            return
        self._settled = True
        assert self._token is not None
        self._listener.settle_later(self._token, self._generation)

    def _routing_key(self) -> str | None:
        return first_routing_key(self._properties, self._subject)

    def requeue(self) -> None:
        if self._settled:
            return
        properties = {**self._properties, REDELIVERIES_PROPERTY: self.redeliveries + 1}
        key = self._routing_key()
        if key:
            properties[ROUTING_KEY_PROPERTY] = key
        broker = self._listener.broker
        broker.sender.publish(
            broker.plan.requeue_to(self._source), self._body, properties=properties,
            retry=SERVER_RETRIES,
        )
        self.acknowledge()

    def dead_letter(self, reason: str) -> str:
        broker = self._listener.broker
        destination, spec = broker.plan.dead_letter_to(self._source, self._routing_key())
        properties = {**self._properties, ERROR_PROPERTY: reason}
        broker.sender.publish(
            destination, self._body, properties=properties, retry=SERVER_RETRIES,
            prepare=lambda: broker.declare(queues=[spec]),
        )
        self.acknowledge()
        return spec.name

    def release(self) -> None:
        """Queue the RELEASED outcome (the broker requeues it unchanged) for the
        polling thread, like an acceptance."""
        if self._settled:
            return
        self._settled = True
        assert self._token is not None
        self._listener.settle_later(self._token, self._generation, release=True)


class Amqp1Listener(Listener):
    """Receives from a set of sources over one connection of its own.

    Credit is granted by hand, ``prefetch`` per source and topped up only in
    :meth:`poll`: while nobody polls, nothing more leaves the broker, and
    :meth:`keepalive` keeps the connection serviced meanwhile. A dropped
    connection is reopened from :meth:`poll` with backoff; a poll never blocks
    longer than its ``timeout`` (beyond a TCP connect to a dead host). Every
    Proton object of the listener is made, used and released in the thread that
    polls it.
    """

    def __init__(
        self, broker: Amqp1Broker, sources: list[Source], *, notifications: bool,
        own_queues: list[str],
    ) -> None:
        self.broker = broker
        self.sources = sources
        self._notifications = notifications
        self._own_queues = own_queues
        self._prefetch = broker.prefetch
        self._log = broker.log.bind(listener=",".join(s.address for s in sources))
        self._stopped = threading.Event()
        self._backoff = broker.new_backoff()
        self._next_attempt = 0.0
        self._generation = 0
        #: When the connection was lost (``time.monotonic()``), until it is back.
        self._down_since: float | None = None
        self._conn: BlockingConnection | None = None
        self._inbox: Inbox | None = None
        self._receivers: dict[Any, tuple[Source, BlockingReceiver]] = {}
        self._tokens = itertools.count()
        self._unsettled: dict[int, Any] = {}  # token -> delivery (notifications)
        #: (token, generation, release rather than accept), applied by the poller
        self._to_settle: collections.deque[tuple[int, int, bool]] = collections.deque()
        try:
            self._open()
        except TRANSIENT_ERRORS as exc:
            raise MessageDeliveryFailure(
                f"Could not listen on {self._log_sources()} at {broker.url}: {describe(exc)}; "
                "check that the broker is running and reachable, and the URL's credentials"
            ) from None

    def _log_sources(self) -> str:
        return ", ".join(source.address for source in self.sources)

    # -- connection ------------------------------------------------------------
    def _open(self) -> None:
        self.broker.declare(queues=[s.queue for s in self.sources if s.queue is not None])
        conn = self.broker.open_connection()
        try:
            inbox = Inbox()
            receivers: dict[Any, tuple[Source, BlockingReceiver]] = {}
            for source in self.sources:
                receiver = conn.create_receiver(source.address, credit=0, handler=inbox)
                receivers[receiver.link] = (source, receiver)
        except BaseException:
            receivers = {}
            close_quietly(conn)
            raise
        self._conn, self._inbox, self._receivers = conn, inbox, receivers
        self._generation += 1
        self._backoff.opened()
        if self._down_since is None:
            self._log.info("listener.connected", generation=self._generation)
        else:  # a warning, as the loss was: whoever saw that sees its end
            self._log.warning("listener.connected", generation=self._generation,
                              down_for=round(time.monotonic() - self._down_since, 3))
            self._down_since = None
        if self._generation > 1 and _probes.probes:
            _probes.listener_reconnected(self.broker.url.scheme)

    def _drop(self) -> BlockingConnection | None:
        """Forget the connection and every Proton object of it (the broker takes
        back what was not settled); the caller closes what is returned."""
        conn, self._conn, self._inbox, self._receivers = self._conn, None, None, {}
        self._unsettled.clear()
        return conn

    def _failed(self, exc: BaseException | str, *, lost: bool = True) -> None:
        """The connection was lost (or, ``lost=False``, could not be opened):
        reopen it after the shared back-off (see :mod:`.._backoff`)."""
        close_quietly(self._drop())
        self.broker.forget_declarations()
        delay = self._backoff.lost() if lost else self._backoff.failed()
        self._next_attempt = time.monotonic() + delay
        if self._down_since is None and self._generation > 0:
            self._down_since = time.monotonic()
        self._log.warning("listener.reconnecting", delay_s=delay,
                          error=exc if isinstance(exc, str) else describe(exc))

    # -- polling ---------------------------------------------------------------
    def poll(self, timeout: float, max_messages: int) -> list[IncomingMessage]:
        deadline = time.monotonic() + timeout
        if self._stopped.is_set():
            return []
        if self._conn is None:
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                self._stopped.wait(min(wait, timeout))
                return []
            try:
                self._open()
            except TRANSIENT_ERRORS as exc:
                self._failed(exc, lost=False)
                return []
        try:
            return self._take(deadline, max_messages)
        except TRANSIENT_ERRORS as exc:
            self._failed(exc)
            return []

    def keepalive(self, timeout: float) -> None:
        """Service the connection (heartbeats, queued settlements) for up to
        ``timeout`` seconds without granting credit: while the server has none to
        poll with, and while it finishes what it took before closing."""
        conn, inbox = self._conn, self._inbox
        if conn is None or inbox is None:
            super().keepalive(timeout)
            return
        try:
            self._apply_settlements()
            if timeout > 0:
                with contextlib.suppress(Timeout):
                    conn.wait(lambda: inbox.failure is not None, timeout=timeout)
            else:
                _pump(conn, until_written=False)
            check_open(conn, inbox, self._receivers)
        except TRANSIENT_ERRORS as exc:
            self._failed(exc)

    def _take(self, deadline: float, max_messages: int) -> list[IncomingMessage]:
        conn, inbox = self._conn, self._inbox
        assert conn is not None
        assert inbox is not None
        self._apply_settlements()
        for link in self._receivers:
            # Credit is topped up only once the last grant is spent: RabbitMQ 3.x's
            # plugin counts credit granted while its own deliveries are still in
            # flight twice, and would send more than ``prefetch``.
            if link.credit == 0:
                queued = sum(1 for item in inbox.items if item[0] is link)
                if queued < self._prefetch:
                    link.flow(self._prefetch - queued)
        remaining = deadline - time.monotonic()
        with contextlib.suppress(Timeout):  # nothing came: an empty poll
            conn.wait(lambda: bool(inbox.items) or inbox.failure is not None,
                      timeout=max(remaining, 0.0))
        if not inbox.items:
            check_open(conn, inbox, self._receivers)
        taken = inbox.items[:max_messages]
        del inbox.items[:max_messages]
        out: list[IncomingMessage] = [
            self._incoming(link, raw, delivery) for link, raw, delivery in taken]
        if out and not self._notifications:
            _pump(conn, until_written=True)  # requests were accepted: tell the broker now
        return out

    def _incoming(self, link: Any, raw: Any, delivery: Any) -> Amqp1IncomingMessage:
        source = self._receivers[link][0]
        if isinstance(raw.body, memoryview):  # a view into memory Proton frees later
            raw.body = raw.body.tobytes()
        token = None
        if self._notifications:
            token = next(self._tokens)
            self._unsettled[token] = delivery
        else:  # requests: taken means done (at most once)
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
        decoded = unpack(raw.body, notifications=self._notifications, headers=raw.properties,
                         content_encoding=content_encoding(raw),
                         unreadable=getattr(raw, "unreadable", None))
        if decoded.error is not None:
            self._log.warning("message.malformed", source=source.address, reason=decoded.error)
        return Amqp1IncomingMessage(self, source, raw, token, self._generation,
                                    **decoded._asdict())

    # -- settlement ------------------------------------------------------------
    def settle_later(self, token: int, generation: int, *, release: bool = False) -> None:
        """Queue a notification's delivery to be accepted (with ``release``:
        released, which the broker requeues) by the polling thread (any thread
        may call this; Proton is only touched by the poller). Never raises."""
        self._to_settle.append((token, generation, release))

    def _apply_settlements(self) -> None:
        while self._to_settle:
            token, generation, release = self._to_settle.popleft()
            delivery = self._unsettled.pop(token, None)
            if delivery is not None and generation == self._generation and self._conn:
                delivery.update(Delivery.RELEASED if release else Delivery.ACCEPTED)
                delivery.settle()
            # else: taken on a connection that is gone; the broker redelivers it

    def stop(self) -> None:
        self._stopped.set()

    def cleanup(self) -> None:
        """Settle what was acknowledged, close the connection (the broker takes
        back anything unsettled) and delete this listener's own queues."""
        self.stop()
        if self._conn is not None:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                self._apply_settlements()  # sent before the close frame
        close_quietly(self._drop())
        for queue in self._own_queues:
            self.broker.delete_queue(queue)
