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
with ``select`` outside it, so publishers are never held up by a wait.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import amqp

from .._buffered import drain, frame_ready

__all__ = ["ConfirmLost", "ConfirmingChannel", "Nacked", "Returned"]

#: How long a waiting thread sleeps before checking again that someone reads
#: (a safety net: a hand-off wakes it at once).
_WAIT_SLICE = 0.5


class ConfirmLost(ConnectionError):
    """The connection went away before the broker confirmed the message: it may
    or may not have arrived, so it is published again (at least once)."""


class Nacked(Exception):
    """The broker refused the message (``basic.nack``)."""


class Returned(Exception):
    """The broker returned a mandatory message: nothing could route it."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.reason = exc


class _Waiter:
    __slots__ = ("done", "error", "event", "key")

    def __init__(self, key: tuple[str, str, bytes] | None) -> None:
        self.event = threading.Event()
        self.done = False
        self.error: BaseException | None = None
        self.key = key  # (exchange, routing key, body) of a mandatory message


class ConfirmingChannel:
    """A kombu connection's AMQP channel in confirm mode, for many threads.

    ``publish`` connects ``conn`` when needed (under the lock) with kombu's
    ``ensure_connection``, its retry ``policy`` and ``errback``, raising what
    kombu raises once the retries ran out. ``errors`` are
    those of a lost connection or channel, ``recoverable`` those of them worth
    publishing again for (a closed connection, not a refused declaration).
    Errors reading or writing drop the channel and fail every waiting publish
    with :class:`ConfirmLost`, so each caller can publish again on a fresh
    connection.
    """

    def __init__(self, conn: Any, *, errors: tuple[type[BaseException], ...],
                 recoverable: tuple[type[BaseException], ...],
                 errback: Callable[[BaseException, float], None]) -> None:
        self._conn = conn
        self._errback = errback
        self._errors = errors
        self._recoverable = recoverable
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
        self._closed = False

    # -- the channel (all under self._io) ------------------------------------------
    def _open(self, policy: Mapping[str, Any]) -> Any:
        if self._closed:
            raise ConfirmLost("the transport was cleaned up")
        if self._channel is None:
            self._conn.ensure_connection(errback=self._errback, **policy)
            try:
                connection = self._conn.connection
                channel = connection.channel()
                channel.confirm_select()
            except self._errors as exc:
                self._fail(exc)
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._channel, self._tag = channel, 0
            self._wire = (connection.sock, connection.transport)
        return self._channel

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
        self._channel = self._wire = None
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
        declare: Sequence[Any], timeout: float | None, policy: Mapping[str, Any],
    ) -> None:
        """Publish ``message`` and return once the broker confirmed it.

        Raises :class:`Returned` (mandatory and unroutable), :class:`Nacked`,
        :class:`ConfirmLost` (publish it again), or a connection or channel
        error of kombu's while connecting or declaring.
        """
        key = (exchange, routing_key, bytes(message.body)) if mandatory else None
        waiter = _Waiter(key)
        with self._io:
            channel = self._open(policy)  # kombu's errors, once its retries ran out
            try:
                for entity in declare:
                    ident = hash(entity)
                    if ident not in self._declared:
                        entity(channel).declare()
                        self._declared.add(ident)
                self._tag += 1
                self._pending[self._tag] = waiter
                channel._basic_publish(message, exchange, routing_key, mandatory)
            except self._errors as exc:
                self._fail(exc)
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
        """Wake a thread still waiting, to read in turn."""
        with self._io:
            for waiter in self._pending.values():
                waiter.event.set()
                return

    def _give_up(self, waiter: _Waiter, deadline: float) -> None:
        with self._io:
            if not waiter.done and time.monotonic() > deadline:
                self._lost(ConfirmLost("the broker did not confirm the message in time"))

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
            with self._io:
                if self._wire is not wire:
                    continue
                try:
                    with contextlib.suppress(TimeoutError):
                        drain(self._conn, 0, readable=True)
                except Exception as exc:  # noqa: BLE001 - lost, or a frame py-amqp chokes on
                    self._lost(exc)  # either way the channel's state is unknown: start afresh

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
