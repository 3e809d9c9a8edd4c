"""Connections of the ``amqp1://`` driver: connecting with failover across the
URL's hosts, telling a dead connection or link from a live one, closing
quietly, and receiving (:class:`Inbox`, :func:`decode_message`).

Every Proton object belongs to one :class:`proton.utils.BlockingConnection`
and is touched by one thread at a time: a sending connection by whoever holds
its lock (see :mod:`._sending`), a listener's connection by its polling thread
only. Proton is not thread-safe, and a ``BlockingConnection`` runs no thread
of its own, so a lock (or one owner) is all it takes.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import amqp.exceptions
import cproton
from proton import Endpoint, Message, ProtonException
from proton.handlers import IncomingMessageHandler, MessagingHandler
from proton.utils import BlockingConnection

from ..._url import TransportHost, TransportURL, mask_password
from ...observe._logging import get_logger
from .._tls import TLSRefused

if TYPE_CHECKING:
    from ._security import Security

__all__ = [
    "TRANSIENT_ERRORS",
    "Attempts",
    "HostRing",
    "Inbox",
    "acquire_unless_failed",
    "check_open",
    "close_quietly",
    "connect",
    "content_encoding",
    "decode_message",
    "describe",
    "ended",
    "logger",
]

#: What a dropped connection, a refused attach or a missing broker raises.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ProtonException, OSError, amqp.exceptions.AMQPError,
)


def describe(exc: BaseException) -> str:
    """An error as text, with any password in it masked."""
    return mask_password(f"{type(exc).__name__}: {exc}")


class HostRing:
    """The URL's hosts in failover order; a failed connect moves on to the next."""

    def __init__(self, url: TransportURL, *, default_port: int = 5672) -> None:
        hosts = url.hosts or (TransportHost(hostname="127.0.0.1"),)
        self.hosts = tuple(hosts)
        self.default_port = default_port
        self._index = 0
        self._lock = threading.Lock()

    def rotation(self) -> list[TransportHost]:
        """Every host, starting with the one that worked last."""
        with self._lock:
            return [*self.hosts[self._index:], *self.hosts[: self._index]]

    def worked(self, host: TransportHost) -> None:
        """Remember ``host`` as the first to try next time."""
        with self._lock:
            self._index = self.hosts.index(host)

    def address(self, host: TransportHost) -> str:
        """``host:port`` (no credentials) for ``host``."""
        name = host.hostname or "127.0.0.1"
        if ":" in name:
            name = f"[{name}]"
        return f"{name}:{host.port or self.default_port}"


def connect(
    ring: HostRing, *, timeout: float, heartbeat: float | None, virtual_host: str | None,
    security: Security,
) -> BlockingConnection:
    """A Proton connection to the first host of ``ring`` that answers.

    Credentials go to Proton as keyword arguments, never inside a URL, so no
    error text Proton builds can show them. A broker certificate refused for
    any host raises :class:`TLSRefused` saying why: no retry can mend that.
    """
    last: BaseException | None = None
    for host in ring.rotation():
        scheme, kwargs = security.proton_options(host)
        if virtual_host:
            kwargs["virtual_host"] = virtual_host
        try:
            conn = BlockingConnection(
                f"{scheme}://{ring.address(host)}", timeout=timeout, heartbeat=heartbeat,
                **kwargs,
            )
        except TRANSIENT_ERRORS as exc:
            refused = security.refused(host, host.port or ring.default_port)
            if refused is not None:
                raise TLSRefused(refused) from None
            last = exc
            continue
        if security.pins(host):
            try:
                security.pin(conn, host, host.port or ring.default_port)
            except BaseException:
                close_quietly(conn)
                raise
        ring.worked(host)
        return conn
    hosts = ", ".join(ring.address(h) for h in ring.hosts)
    raise ConnectionError(f"no AMQP 1.0 broker answered at {hosts}: "
                          f"{describe(last) if last else 'no hosts'}")


class Attempts:
    """The connection attempts made under one lock that failed: a sender reads
    :meth:`seen` before it waits for the lock, and :meth:`check` once it holds
    it; an attempt that failed meanwhile fails this sender's attempt too (the
    broker was just found unreachable: trying again at once would double its
    wait, and with many senders multiply it)."""

    def __init__(self) -> None:
        self._failures = 0
        self._last: str | None = None

    def seen(self) -> int:
        """A mark to pass to :meth:`check` (read without the lock)."""
        return self._failures

    def check(self, seen: int) -> None:
        """Raise ``ConnectionError`` if an attempt failed since ``seen`` (under the
        lock, or while waiting for it: two reads of values the lock's holder sets)."""
        if self._failures != seen and self._last is not None:
            raise ConnectionError(f"{self._last} (found while waiting for the connection "
                                  "attempt in progress)")

    def failed(self, exc: BaseException) -> None:
        """A connection attempt failed (under the lock)."""
        self._failures += 1
        self._last = describe(exc)

    def worked(self) -> None:
        """A connection attempt succeeded: those still waiting try their own."""
        self._last = None


#: How often a thread waiting for a connection's lock looks for a failed attempt.
LOCK_POLL = 0.05


def acquire_unless_failed(lock: threading.Lock, attempts: Attempts, seen: int, *,
                          timeout: float | None = None) -> None:
    """Take ``lock``, unless a connection attempt fails (:meth:`Attempts.check`)
    while this waits for it: then raise ``ConnectionError`` at once, lock or not.
    Waiting for the lock alone, a thread could see another's fresh attempt start
    before it (the lock is not fair) and wait that one out too. ``timeout``:
    ``ConnectionError`` after that many seconds of waiting."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = LOCK_POLL if deadline is None else max(
            0.0, min(LOCK_POLL, deadline - time.monotonic()))
        if lock.acquire(timeout=wait):
            return
        attempts.check(seen)
        if deadline is not None and time.monotonic() >= deadline:
            raise ConnectionError(f"the connection stayed busy for {timeout:.1f}s")


def close_quietly(conn: BlockingConnection | None) -> None:
    """Close ``conn``, ignoring what a dead connection raises on the way out.

    Call it from the thread that owns ``conn``, after dropping every delivery
    and link of it: Proton frees a connection's objects on close, and is not
    thread-safe, so no wrapper of them may be released later elsewhere."""
    if conn is None:
        return
    with contextlib.suppress(Exception):  # Proton's teardown on a broken socket
        conn.close()


def ended(link: Any) -> str | None:
    """Why the broker ended ``link`` or its session, or ``None`` while both
    live. RabbitMQ's plugin ends the sessions (and keeps the connection) when
    its internal connections are closed, as ``rabbitmqctl close_all_connections``
    does: the links are dead though the connection still heartbeats."""
    for endpoint in (link, link.session):
        if endpoint.state & Endpoint.REMOTE_CLOSED:
            condition = endpoint.remote_condition
            return mask_password(f"the broker ended the {type(endpoint).__name__.lower()} "
                                 f"({condition or 'no reason given'})")
    return None


def check_open(conn: BlockingConnection, inbox: Inbox, links: Iterable[Any] = ()) -> None:
    """Raise ``ConnectionError`` if the broker closed ``conn``, ended one of
    ``links`` or their sessions, or the socket is gone: Proton notes that, but a
    ``wait`` that ends on its condition or timeout does not always say so."""
    if inbox.failure is not None:
        raise ConnectionError(inbox.failure)
    for link in links:
        why = ended(link)
        if why is not None:
            raise ConnectionError(why)
    if conn.disconnected:
        raise ConnectionError(f"disconnected: {mask_password(str(conn.disconnected))}")
    endpoint = conn.conn
    if endpoint is None or endpoint.state & Endpoint.REMOTE_CLOSED:
        condition = endpoint.remote_condition if endpoint is not None else None
        raise ConnectionError(mask_password(
            f"the broker closed the connection ({condition or 'no reason given'})"))


def decode_message(data: bytes) -> Message:
    """A received AMQP 1.0 message; never raises. Proton turns what a peer sent
    into Python values while it decodes (an application property whose text is
    not UTF-8 raises), which would leave the delivery current and the listener
    meeting it again after every restart. A message that cannot be decoded
    comes back with the encoded bytes as its body (so a call's reply address can
    still be found in them) and the reason in ``unreadable``."""
    message = Message()
    try:
        message.decode(data)
    except Exception as exc:  # noqa: BLE001 - whatever a peer sent
        message = Message(body=data)
        message.unreadable = (  # type: ignore[attr-defined]
            f"its AMQP 1.0 sections could not be decoded ({describe(exc)})"[:200])
    return message


def content_encoding(message: Any) -> str | None:
    """The ``content-encoding`` a received message names, ``None`` when it names
    none (Proton's ``Message.content_encoding`` reads an absent one as the
    symbol ``"None"``); one that is not text names no codec dovecote reads."""
    try:
        found = cproton.pn_message_get_content_encoding(message._msg)
    except Exception:  # noqa: BLE001 - bytes a peer sent that are not UTF-8
        return "<not text>"
    return found if isinstance(found, str) else None


class _SafeIncoming(IncomingMessageHandler):
    """Proton's incoming-message handler, decoding with :func:`decode_message`."""

    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        if (delivery.link.is_receiver and delivery.readable and not delivery.partial
                and not delivery.aborted):
            data = delivery.link.recv(delivery.pending)
            delivery.link.advance()
            event.message = decode_message(data)
            if not event.link.state & Endpoint.LOCAL_CLOSED:
                self.on_message(event)
            return
        super().on_delivery(event)


class Inbox(MessagingHandler):
    """Collects deliveries of the receivers it handles; settles nothing.

    ``prefetch=0`` turns off Proton's automatic credit top-up: the owner grants
    credit itself, so no more than that many messages ever leave the broker.
    It holds no reference to its connection (links keep their handler), so no
    cycle keeps Proton objects alive for the garbage collector to free later,
    in another thread.
    """

    def __init__(self) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=False)
        handlers: list[Any] = list(self.handlers)  # type: ignore[arg-type]
        self.handlers = [
            _SafeIncoming(False, weakref.proxy(self))
            if isinstance(handler, IncomingMessageHandler) else handler
            for handler in handlers]
        self.items: list[tuple[Any, Message, Any]] = []
        #: Why the broker closed one of the links, once it has.
        self.failure: str | None = None

    def on_link_remote_close(self, event: Any) -> None:
        """The broker detached a receiver (queue deleted, connection closing):
        note it, so the owner reconnects; Proton's default would print it."""
        condition = event.link.remote_condition
        self.failure = mask_password(str(condition) if condition else "link closed by the broker")
        event.link.close()
        event.container.yield_()

    def on_message(self, event: Any) -> None:
        """Queue the message with its link and delivery, and wake the wait loop."""
        self.items.append((event.link, event.message, event.delivery))
        event.container.yield_()


def logger(url: TransportURL, **bound: Any) -> Any:
    """The structlog logger every part of the driver logs through."""
    return get_logger("dovecote.drivers.amqp1").bind(transport=str(url), **bound)
