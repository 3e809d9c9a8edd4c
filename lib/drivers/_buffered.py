"""Buffered socket reads for py-amqp's transports.

py-amqp reads each frame with three ``recv`` calls of the exact sizes (header,
payload, end octet): a delivered message is three frames, so nine system calls,
each releasing and re-taking the GIL. Reading whatever the socket holds (up to
``CHUNK`` bytes) and slicing frames out of that buffer takes one call per burst.
py-amqp already keeps unread bytes in ``_read_buffer`` across timeouts, so the
frames read ahead wait there for the next read; anything that waits for the
socket to become readable must look at that buffer first (:func:`frame_ready`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
from typing import Any

import amqp.transport

__all__ = [
    "CHUNK", "STALL", "BufferedReads", "BufferedTCPTransport", "Wakeup", "drain",
    "frame_ready", "more_ready",
]

#: The most bytes one ``recv`` asks for beyond what the current read needs.
CHUNK = 65536
#: How long :func:`drain` waits for the rest of a frame it started reading; a
#: frame still partial then stays buffered for the next drain.
STALL = 0.05


class BufferedReads:
    """``_read`` for a py-amqp transport: reads ahead, up to ``CHUNK`` bytes."""

    _read_buffer: bytes
    _quick_recv: Any
    sock: Any
    having_timeout: Any
    raise_on_initial_eintr: bool
    _retry_errnos: tuple[int, ...] = (errno.EAGAIN, errno.EINTR)

    def _read(self, n: int, initial: bool = False) -> bytes:  # noqa: FBT001, FBT002 - py-amqp's
        rbuf = self._read_buffer
        if len(rbuf) < n:
            try:
                while len(rbuf) < n:
                    rbuf += self._recv_some(max(n - len(rbuf), CHUNK), initial=initial)
            except BaseException:
                self._read_buffer = rbuf  # kept for the next read (py-amqp's contract)
                raise
        self._read_buffer = rbuf[n:]
        return rbuf[:n]

    def _recv_some(self, size: int, *, initial: bool) -> bytes:
        while True:
            try:
                chunk: bytes = self._quick_recv(size)
            except OSError as exc:
                if exc.errno in self._retry_errnos:
                    if initial and self.raise_on_initial_eintr:
                        raise socket.timeout from None  # noqa: UP041 - py-amqp's
                    continue
                raise
            if not chunk:
                raise OSError("Server unexpectedly closed connection")
            return chunk


class BufferedTCPTransport(BufferedReads, amqp.transport.TCPTransport):  # type: ignore[misc]
    """py-amqp's plain TCP transport with buffered reads."""


def frame_ready(transport: Any) -> bool:
    """Whether ``transport`` can read a frame without waiting: a whole frame is
    in its buffer, or TLS holds decrypted bytes that a wait on the socket would
    not see. A partial frame is not ready: the rest arrives on the socket."""
    buffered = transport._read_buffer
    if len(buffered) >= 7 and len(buffered) >= 8 + int.from_bytes(buffered[3:7]):
        return True
    pending = getattr(transport.sock, "pending", None)
    return bool(pending is not None and pending())


def more_ready(conn: Any) -> bool:
    """Whether :func:`drain` on kombu connection ``conn`` can handle a frame
    without waiting (always "try" on transports it does not buffer)."""
    transport = getattr(conn.connection, "transport", None)
    return not isinstance(transport, BufferedReads) or frame_ready(transport)


class Wakeup:
    """Ends a :func:`drain`'s wait from another thread: a pipe whose read end
    the wait watches beside the socket. A worker that finished a message (and
    could not send its acknowledgement because the listener's thread holds the
    connection, waiting for the broker) calls :meth:`set`, so the listener sends
    it now instead of after its wait: with the prefetch window full of
    unacknowledged messages, the broker sends nothing more until it does.

    Set once until cleared: the settlements that come while it is set are sent
    by the same wake-up, so they cost neither a system call nor another wake.
    """

    __slots__ = ("_lock", "_open", "_read", "_set", "_write")

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._open = True
        self._set = False
        self._lock = threading.Lock()  # no write to a closed (and maybe reused) descriptor

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        """Wake the wait: a byte in the pipe, unless one is there already (a
        full pipe is awake too)."""
        if self._set:  # read without the lock: a stale False only takes the lock
            return
        with self._lock, contextlib.suppress(OSError):  # BlockingIOError: full, awake
            if self._open and not self._set:
                self._set = True
                os.write(self._write, b"!")

    def clear(self) -> None:
        """Take every byte :meth:`set` wrote, then let the next :meth:`set` write.
        In this order, a :meth:`set` that found it still set came before the
        waiter's next look at what it was woken for (its settlement is seen)."""
        with contextlib.suppress(OSError):  # BlockingIOError: none left
            while os.read(self._read, 4096):
                pass
        self._set = False

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                os.close(self._read)
                os.close(self._write)


def drain(conn: Any, timeout: float, *, readable: bool = False,
          wakeup: Wakeup | None = None) -> None:
    """What kombu's ``conn.drain_events(timeout=timeout)`` does, for fewer
    system calls: wait (up to ``timeout``) until the broker sent something,
    then handle every frame that came, the first read from the socket and the
    rest from the buffer. py-amqp's own loop sets the socket's timeout twice per
    frame (a delivery is three frames); this sets it twice per drain.

    ``readable``: the caller already saw the socket readable (no wait).
    ``wakeup``: returns early, having read nothing, once it is set. Raises
    :class:`TimeoutError` when nothing came. Other kombu transports go through
    their ``drain_events``.
    """
    connection = conn.connection
    transport = getattr(connection, "transport", None)
    if not isinstance(transport, BufferedReads):
        conn.drain_events(timeout=timeout)
        return
    if not readable and not frame_ready(transport):
        watched = [transport.sock] if wakeup is None else [transport.sock, wakeup]
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if not ready:
            raise TimeoutError
        if wakeup is not None and wakeup in ready:
            wakeup.clear()
            if transport.sock not in ready:
                return
    with transport.having_timeout(STALL):
        connection.blocking_read(None)
        while frame_ready(transport):  # whole frames already read: no system call
            connection.blocking_read(None)
