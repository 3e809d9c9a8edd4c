"""One publishing channel in confirm mode, shared by every thread that sends.

Waiting for each publish's own confirm one at a time (py-amqp's
``confirm_publish``, oslo.messaging's way) caps a driver at one round trip per
message however many threads send. Here threads publish on one channel in
turn and share the waiting: whichever thread waits first reads the broker's
``basic.ack`` frames for everyone (a ``multiple`` ack confirms a whole run of
delivery tags) and wakes each thread whose tag came back; when its own tag is
confirmed it hands the reading to a thread still waiting. A lone thread reads
its own ack, with no hand-off. Every ``publish`` still returns only once the
broker confirmed that message, and raises if it was returned or refused.

The socket is written and read only under one lock; a reader waits for data
with ``select`` outside it, so publishers are never held up by a wait. Nobody
waits for that lock longer than its own timeouts: a connection attempt made
under it is one attempt (one try of each host, each bounded by
``connect_timeout``; the back-off between attempts is the caller's, outside
every lock), writes and declarations run under a socket timeout, and a sender
that waited while another's attempt failed counts that failure as its own
attempt instead of making one more. Declarations go on a channel of their own,
so one the broker refuses (``PRECONDITION_FAILED``) fails the sender that asked
for it, and nobody else's publish.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import amqp
import amqp.exceptions
import kombu.exceptions

from .._buffered import drain, frame_ready

__all__ = ["ConfirmLost", "ConfirmingChannel", "Nacked", "Returned", "Unreachable"]

#: How long a waiting thread sleeps before checking again that someone reads
#: (a safety net: a hand-off wakes it at once).
_WAIT_SLICE = 0.5
#: AMQP classes whose methods are declarations (exchange, queue): a channel
#: error the broker raises for one closed the declaring channel only.
_DECLARATIONS = frozenset({40, 50})


class ConfirmLost(ConnectionError):
    """The connection went away before the broker confirmed the message: it may
    or may not have arrived, so it is published again (at least once)."""


class Unreachable(ConnectionError):
    """No connection to publish on: this sender's connection attempt failed, or
    the one in progress it waited for did. Nothing was sent; it counts as one
    failed attempt (the caller backs off, outside every lock, and tries again
    if its ``retry`` allows)."""


class Nacked(Exception):
    """The broker refused the message (``basic.nack``)."""


class Returned(Exception):
    """The broker returned a mandatory message: nothing could route it."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.reason = exc


class _Refused(Exception):
    """A declaration the broker refused (carried past the handler that would
    drop the whole connection)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


#: ``having_timeout`` when there is no socket (nothing to bound).
_NO_TIMEOUT = contextlib.nullcontext()


class _Waiter:
    __slots__ = ("done", "error", "event", "key")

    def __init__(self, key: tuple[str, str, bytes] | None) -> None:
        self.event = threading.Event()
        self.done = False
        self.error: BaseException | None = None
        self.key = key  # (exchange, routing key, body) of a mandatory message


class ConfirmingChannel:
    """A kombu connection's AMQP channel in confirm mode, for many threads.

    ``publish`` connects ``conn`` when needed (under the lock): one attempt,
    trying each of its hosts once (``errback`` is told of each host that
    failed), raising :class:`Unreachable` when none answered, or what kombu
    raised when retrying cannot help (refused credentials, a refused
    certificate). ``errors`` are those of a lost connection or channel,
    ``recoverable`` those of them worth publishing again for (a closed
    connection, not a refused declaration). Errors reading or writing drop the
    channel and fail every waiting publish with :class:`ConfirmLost`, so each
    caller can publish again on a fresh connection. ``connect_timeout`` bounds
    each host's try and the opening of the channel.
    """

    def __init__(self, conn: Any, *, errors: tuple[type[BaseException], ...],
                 recoverable: tuple[type[BaseException], ...],
                 errback: Callable[[BaseException, float], None],
                 connect_timeout: float) -> None:
        self._conn = conn
        self._errback = errback
        self._errors = errors
        self._recoverable = recoverable
        self._connect_timeout = connect_timeout
        hosts = max(1, len(getattr(conn, "alt", None) or ()))
        #: The longest one connection attempt holds the lock (each host, and
        #: the channel's opening): a sender waits that long for another's.
        self._attempt_bound = (hosts + 1) * connect_timeout
        self._io = threading.Lock()  # the socket: writing, reading, reconnecting
        self._reading = threading.Lock()  # held by the one thread reading acks
        self._pending: dict[int, _Waiter] = {}  # by delivery tag, in tag order
        self._channel: Any = None
        #: The open connection's socket and py-amqp transport, set together: a
        #: reader waits on them without the lock (never through ``self._conn``,
        #: whose ``connection`` property would connect).
        self._wire: tuple[Any, Any] | None = None
        self._tag = 0
        self._declared: set[int] = set()
        #: The channel declarations go on (a refused one closes it, not ``_channel``).
        self._declaring: Any = None
        #: Connection attempts that failed so far, and the last one's error: a
        #: sender that saw the count change while it waited shares that failure.
        self._failures = 0
        self._last_failure: BaseException | None = None
        self._closed = False

    # -- the channel (all under self._io) ------------------------------------------
    def _open(self, seen: int) -> Any:
        """The channel in confirm mode; without one, one connection attempt,
        unless an attempt failed since this sender began (``seen``): that one
        was this sender's attempt too."""
        if self._closed:
            raise ConfirmLost("the transport was cleaned up")
        if self._channel is not None:
            return self._channel
        if self._failures != seen and self._last_failure is not None:
            raise Unreachable(
                f"{type(self._last_failure).__name__}: {self._last_failure} (the connection "
                "attempt this send waited for failed)") from self._last_failure
        try:
            self._conn.ensure_connection(
                errback=self._errback, max_retries=max(0, len(self._conn.alt or ()) - 1),
                interval_start=0, interval_step=0, interval_max=0)
            connection = self._conn.connection
            with connection.transport.having_timeout(self._connect_timeout):
                channel = connection.channel()
                channel.confirm_select()
        except Exception as exc:
            self._failures += 1
            self._last_failure = exc
            with contextlib.suppress(Exception):  # half open at most
                self._conn.collect()
            with contextlib.suppress(Exception):
                self._conn.maybe_switch_next()  # the next attempt starts on the next host
            if isinstance(exc, (kombu.exceptions.OperationalError, *self._recoverable)):
                raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
            raise  # retrying cannot help (credentials, a refused certificate)
        if self._closed:  # cleaned up while connecting
            self._lost(ConfirmLost("the transport was cleaned up"))
            raise ConfirmLost("the transport was cleaned up")
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._channel, self._tag = channel, 0
        self._wire = (connection.sock, connection.transport)
        self._last_failure = None  # whoever waited since then was not failed by it
        return channel

    def _declare(self, entities: Sequence[Any]) -> None:
        """Declare what this connection has not yet, on the declaring channel."""
        for entity in entities:
            ident = hash(entity)
            if ident in self._declared:
                continue
            channel = self._declaring
            if channel is None or not channel.is_open:
                channel = self._declaring = self._conn.connection.channel()
            entity(channel).declare()
            self._declared.add(ident)

    def _fail(self, exc: BaseException) -> NoReturn:
        """Drop the channel after ``exc``; raise :class:`ConfirmLost` for an
        error worth publishing again for, else ``exc`` itself."""
        self._lost(exc)
        if isinstance(exc, self._recoverable):
            raise ConfirmLost(f"{type(exc).__name__}: {exc}") from exc
        raise exc

    def _lost(self, exc: BaseException) -> None:
        """Drop the channel and connection; fail every publish still waiting."""
        pending, self._pending = self._pending, {}
        self._channel = self._wire = self._declaring = None
        self._declared.clear()
        error = exc if isinstance(exc, ConfirmLost) else ConfirmLost(
            f"{type(exc).__name__}: {exc}")
        for waiter in pending.values():
            waiter.error = error
            waiter.done = True
            waiter.event.set()
        with contextlib.suppress(Exception):  # the connection is already broken
            self._conn.collect()

    def _settle(self, tag: int, *, multiple: bool, error: BaseException | None) -> None:
        if multiple:
            settled = [t for t in self._pending if t <= tag]
        else:
            settled = [tag] if tag in self._pending else []
        for t in settled:
            waiter = self._pending.pop(t)
            if waiter.error is None:
                waiter.error = error
            waiter.done = True
            waiter.event.set()

    def _on_ack(self, tag: int, multiple: bool) -> None:  # noqa: FBT001 - py-amqp's callback
        self._settle(tag, multiple=multiple, error=None)

    def _on_nack(self, tag: int, multiple: bool) -> None:  # noqa: FBT001
        self._settle(tag, multiple=multiple,
                     error=Nacked("the broker refused the message (basic.nack)"))

    def _on_return(self, exc: BaseException, exchange: str, routing_key: str,
                   message: Any) -> None:
        body = message.body  # py-amqp decodes a text body it can
        if isinstance(body, str):
            body = body.encode(getattr(message, "content_encoding", None) or "utf-8",
                               "surrogateescape")
        key = (exchange, routing_key, bytes(body))
        for waiter in self._pending.values():
            if waiter.key == key and waiter.error is None:
                waiter.error = Returned(exc)
                return

    # -- publishing ----------------------------------------------------------------
    def publish(
        self, message: amqp.Message, *, exchange: str, routing_key: str, mandatory: bool,
        declare: Sequence[Any], timeout: float | None,
    ) -> None:
        """One attempt: publish ``message`` and return once the broker confirmed it.

        ``timeout`` bounds the wait for the confirm, the writing and declaring,
        and (with one connection attempt on top) the wait for the lock.
        Raises :class:`Returned` (mandatory and unroutable), :class:`Nacked`,
        :class:`ConfirmLost` (publish it again), :class:`Unreachable` (no
        connection: try again later), or a channel error of kombu's for a
        declaration the broker refused (the connection goes on).
        """
        key = (exchange, routing_key, bytes(message.body)) if mandatory else None
        waiter = _Waiter(key)
        seen = self._failures
        patience = self._attempt_bound + (timeout or 0.0) if timeout is not None else -1
        if not self._io.acquire(timeout=patience):
            raise ConfirmLost(f"the publishing connection stayed busy for {patience:.1f}s")
        try:
            channel = self._open(seen)
            transport = self._wire[1] if self._wire is not None else None
            with transport.having_timeout(timeout) if transport is not None else _NO_TIMEOUT:
                try:
                    self._declare(declare)
                except amqp.exceptions.ChannelError as exc:
                    if (exc.method_sig or (0,))[0] not in _DECLARATIONS:
                        raise
                    raise _Refused(exc) from exc  # only the declaring channel closed
                self._tag += 1
                self._pending[self._tag] = waiter
                channel._basic_publish(message, exchange, routing_key, mandatory)
        except (Unreachable, ConfirmLost):
            raise  # no connection (nothing to drop), or cleaned up
        except _Refused as refused:
            raise refused.error from None
        except self._errors as exc:
            self._fail(exc)
        finally:
            self._io.release()
        self._await(waiter, None if timeout is None else time.monotonic() + timeout)
        if waiter.error is not None:
            raise waiter.error

    def _await(self, waiter: _Waiter, deadline: float | None) -> None:
        while not waiter.done:
            if self._reading.acquire(blocking=False):
                try:
                    self._read_until(waiter, deadline)
                finally:
                    self._reading.release()
                    self._hand_over()
                return
            waiter.event.wait(_WAIT_SLICE)
            waiter.event.clear()
            if deadline is not None and not waiter.done and time.monotonic() > deadline:
                self._give_up(waiter, deadline)

    def _hand_over(self) -> None:
        """Wake a thread still waiting, to read in turn (if the lock is busy, the
        waiters' own wake-up every ``_WAIT_SLICE`` does it)."""
        if self._io.acquire(timeout=_WAIT_SLICE):
            try:
                for waiter in self._pending.values():
                    waiter.event.set()
                    return
            finally:
                self._io.release()

    def _give_up(self, waiter: _Waiter, deadline: float) -> None:
        """The confirm did not come in time: start afresh (or, if the lock is
        busy, fail this publish alone: whoever holds the lock is bounded too)."""
        if not self._io.acquire(timeout=_WAIT_SLICE):
            if not waiter.done:
                waiter.error = waiter.error or ConfirmLost(
                    "the broker did not confirm the message in time")
                waiter.done = True
            return
        try:
            if not waiter.done and time.monotonic() > deadline:
                self._lost(ConfirmLost("the broker did not confirm the message in time"))
        finally:
            self._io.release()

    def _read_until(self, waiter: _Waiter, deadline: float | None) -> None:
        while not waiter.done:
            wait = _WAIT_SLICE
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    self._give_up(waiter, deadline)
                    return
            wire = self._wire
            if wire is None:
                return  # lost meanwhile: the waiter was failed
            sock, transport = wire
            if not frame_ready(transport):
                try:
                    readable, _, _ = select.select([sock], [], [], wait)
                except (OSError, ValueError, TypeError):  # closed under us: seen below
                    readable = [sock]
                if not readable:
                    continue
            if not self._io.acquire(timeout=_WAIT_SLICE):
                continue  # a sender holds it (bounded): look at the deadline again
            try:
                if self._wire is not wire:
                    continue
                try:
                    with contextlib.suppress(TimeoutError):
                        drain(self._conn, 0, readable=True)
                except Exception as exc:  # noqa: BLE001 - lost, or a frame py-amqp chokes on
                    self._lost(exc)  # either way the channel's state is unknown: start afresh
            finally:
                self._io.release()

    def close(self) -> None:
        """Fail whatever still waits and close the connection; no more publishing.
        Never waits long: a sender holding the channel (reconnecting, or blocked
        by a broker's flow control) is left to notice ``_closed`` by itself."""
        self._closed = True
        if self._io.acquire(timeout=_WAIT_SLICE):
            try:
                self._lost(ConfirmLost("the transport was cleaned up"))
            finally:
                self._io.release()
