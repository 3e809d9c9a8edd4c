"""Sending for the ``amqp1://`` driver: one connection, under a lock, that
publishes for every thread of a driver and waits for the broker to settle
each message.

No sender waits behind another's retries: the lock is held for one bounded
connection attempt at most (the back-off between attempts is slept outside
it), a sender waits for the lock only as long as its own attempt may take,
and one that waited while another's connection attempt failed counts that
failure as its own attempt instead of making one more
(:class:`~._connection.Attempts`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from proton import Delivery, Link, Message
from proton.utils import BlockingConnection, BlockingSender, SendException

from ..._errors import MessageDeliveryFailure
from ._connection import (
    TRANSIENT_ERRORS,
    Attempts,
    acquire_unless_failed,
    close_quietly,
    describe,
    ended,
)

if TYPE_CHECKING:
    from .._backoff import Backoff
    from ._address import Destination

__all__ = ["SendChannel"]


class SendChannel:
    """One connection that publishes for every thread of a driver, under a lock.

    Each send waits for the broker to settle it (RabbitMQ confirms it), and a
    dropped connection is reopened with backoff, across the URL's hosts, up to
    ``retry`` times (``None`` or negative: until :meth:`close`). An attempt
    waits for the lock as long as one attempt may hold it at most (a connection,
    then ``send_timeout``), and the backoff is slept outside the lock.
    """

    def __init__(
        self, open_connection: Callable[[], BlockingConnection], *, send_timeout: float,
        backoff: Callable[[], Backoff], on_failure: Callable[[], None], log: Any,
        max_idle: float | None,
    ) -> None:
        self._open = open_connection
        # Proton checks the idle timeout only while it runs, so a connection left
        # alone longer than that "expires" on its next use: reopen it instead.
        self._max_idle = max_idle
        self._last_used = 0.0
        self._send_timeout = send_timeout
        self._new_backoff = backoff
        self._on_failure = on_failure
        self._log = log
        self._lock = threading.Lock()
        #: How long an attempt waits for the lock: the holder connects (bounded
        #: by the connect timeout) and sends (bounded by ``send_timeout``).
        self._patience = 2 * send_timeout
        self._attempts = Attempts()
        self._closed = threading.Event()
        self._conn: BlockingConnection | None = None
        self._senders: dict[str, BlockingSender] = {}

    def publish(
        self, destination: Destination, body: object, *, retry: int | None = None,
        ttl: float | None = None, properties: Mapping[str, Any] | None = None,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        """Send ``body`` (text, bytes, or an AMQP value sent back as it came) to
        ``destination``; ``prepare`` runs before each attempt (declarations);
        raises :class:`MessageDeliveryFailure` when out of retries."""
        data: Any = body.encode("utf-8") if isinstance(body, str) else body
        message = Message(
            body=data, inferred=True, content_type="application/json", durable=True,
            subject=destination.subject, properties=dict(properties) if properties else None,
        )
        if ttl:
            message.ttl = ttl
        attempt = 0
        backoff = self._new_backoff()
        while True:
            if self._closed.is_set():
                raise MessageDeliveryFailure("the transport was cleaned up")
            try:
                if prepare is not None:
                    prepare()  # declarations, on a connection of their own
                self._attempt(destination.address, message)
            except SendException as exc:
                raise MessageDeliveryFailure(
                    f"the broker refused a message to {destination.address!r}: {describe(exc)}"
                ) from None
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                if retry is not None and 0 <= retry < attempt:
                    raise MessageDeliveryFailure(
                        f"could not send to {destination.address!r} after {attempt} attempt(s): "
                        f"{describe(exc)}"
                    ) from None
                delay = backoff.failed()
                self._log.warning("sender.reconnecting", attempt=attempt, delay_s=delay,
                                  error=describe(exc))
                self._closed.wait(delay)
            else:
                return

    def _attempt(self, address: str, message: Message) -> None:
        """One attempt at sending ``message``: waits for the lock at most
        ``_patience``; a connection that fails (to open, or while sending) is
        dropped under the lock, and the declarations are forgotten."""
        seen = self._attempts.seen()
        acquire_unless_failed(self._lock, self._attempts, seen, timeout=self._patience)
        dropped = False
        try:
            if self._conn is None:
                self._attempts.check(seen)
            connecting = self._conn is None
            try:
                self._send_locked(address, message)
            except TRANSIENT_ERRORS as exc:
                if self._conn is None:  # it could not be opened (an idle one is reopened)
                    self._attempts.failed(exc)
                conn, self._conn = self._conn, None
                self._senders.clear()
                close_quietly(conn)
                dropped = True
                raise
            if connecting:
                self._attempts.worked()
        finally:
            self._lock.release()
            if dropped:
                self._on_failure()

    def _send_locked(self, address: str, message: Message) -> None:
        now = time.monotonic()
        if self._conn is not None and self._max_idle and now - self._last_used > self._max_idle:
            close_quietly(self._conn)
            self._conn = None
        self._last_used = now
        if self._conn is None:
            self._conn = self._open()
            self._senders.clear()
        sender = self._senders.get(address)
        if sender is None:
            if len(self._senders) >= 256:  # bound the cache of per-address links
                _, old = self._senders.popitem()
                old.close()  # type: ignore[no-untyped-call]
            sender = self._senders[address] = self._conn.create_sender(address)
        _send(self._conn, sender.link, message, timeout=self._send_timeout)

    def close(self) -> None:
        """Close the connection; later sends fail at once."""
        self._closed.set()
        with self._lock:
            conn, self._conn = self._conn, None
            self._senders.clear()
        close_quietly(conn)


def _send(conn: BlockingConnection, link: Any, message: Message, *, timeout: float) -> None:
    """Send ``message`` on ``link`` and wait until the broker settles it; like
    Proton's ``BlockingSender.send``, but a link or session the broker ended
    fails at once (``ConnectionError``: reconnect and send again) instead of
    waiting out ``timeout``."""
    why = ended(link)
    if why is not None:
        raise ConnectionError(why)
    delivery = link.send(message)
    conn.wait(lambda: delivery.settled or delivery.remote_state in _FINAL
              or ended(link) is not None, timeout=timeout, msg=f"Sending on {link.name}")
    why = ended(link)
    if why is not None and not (delivery.settled or delivery.remote_state in _FINAL):
        raise ConnectionError(why)
    if link.snd_settle_mode != Link.SND_SETTLED:
        delivery.settle()
    if delivery.remote_state in (Delivery.REJECTED, Delivery.RELEASED):
        raise SendException(delivery.remote_state)


#: Delivery states that end a send.
_FINAL = frozenset({Delivery.ACCEPTED, Delivery.REJECTED, Delivery.RELEASED, Delivery.MODIFIED})
