"""Connections for the ``amqp1://`` driver: failover, backoff, sending, declaring.

Every Proton object here belongs to one :class:`proton.utils.BlockingConnection`
and is touched by one thread at a time: a :class:`SendChannel` by whoever holds
its lock, a listener's connection by its polling thread only. Proton is not
thread-safe, and a ``BlockingConnection`` runs no thread of its own, so a lock
(or one owner) is all it takes.

No sender waits behind another's retries: a lock is held for one bounded
connection attempt at most (the back-off between attempts is slept outside it),
a sender waits for a lock only as long as its own attempt may take, and one
that waited while another's connection attempt failed counts that failure as
its own attempt instead of making one more (:class:`_Attempts`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions
from proton import Delivery, Endpoint, Link, Message, ProtonException
from proton.handlers import IncomingMessageHandler, MessagingHandler
from proton.utils import BlockingConnection, BlockingSender, SendException

from ..._errors import MessageDeliveryFailure
from ..._url import TransportHost, TransportURL, mask_password
from ...observe._logging import get_logger
from .._backoff import Backoff
from .._tls import TLSRefused
from ._address import Binding, Destination, QueueSpec

if TYPE_CHECKING:
    from ._security import Security

__all__ = [
    "TRANSIENT_ERRORS",
    "HostRing",
    "Inbox",
    "SendChannel",
    "Topology",
    "check_open",
    "close_quietly",
    "ended",
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


class _Attempts:
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
        """Raise ``ConnectionError`` if an attempt failed since ``seen`` (under the lock)."""
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


class Topology:
    """Declares exchanges, queues and bindings over AMQP 0-9-1 (RabbitMQ only).

    RabbitMQ 3.x's AMQP 1.0 plugin can attach to existing queues and exchanges
    but cannot bind a named queue, so the ``rabbitmq`` address plan declares
    oslo.messaging's layout here first. A declaration that clashes with an
    existing object of different flags (another client declared it) is
    accepted as long as the object exists.
    """

    def __init__(
        self, ring: HostRing, *, virtual_host: str, timeout: float, security: Security,
        durable: bool = False,
    ) -> None:
        self._durable = durable  # topic exchanges, as amqp_durable_queues makes them
        self._security = security
        self._ring = ring
        self._vhost = virtual_host
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: amqp.Connection | None = None
        self._known: set[tuple[str, str]] = set()
        self._attempts = _Attempts()

    def _channel(self) -> Any:
        if self._conn is None:
            last: BaseException | None = None
            for host in self._ring.rotation():
                conn = self._security.amqp091(
                    host, self._ring.address(host), virtual_host=self._vhost,
                    connect_timeout=self._timeout,
                )
                try:
                    conn.connect()
                except TRANSIENT_ERRORS as exc:
                    last = exc
                    continue
                self._conn = conn
                self._attempts.worked()
                break
            else:
                error = ConnectionError(
                    f"could not declare queues: {describe(last) if last else ''}")
                self._attempts.failed(error)
                raise error
        return self._conn.channel()

    def _tolerant(self, declare: Callable[[Any], object], passive: Callable[[Any], object]) -> None:
        channel = self._channel()
        try:
            declare(channel)
        except amqp.exceptions.PreconditionFailed:
            passive(self._channel())  # exists with other flags: fine
        else:
            channel.close()

    def _exchange(self, binding: Binding) -> None:
        if ("x", binding.exchange) in self._known or binding.exchange.startswith("amq."):
            return
        self._tolerant(
            lambda ch: ch.exchange_declare(
                binding.exchange, binding.exchange_type,
                durable=self._durable and binding.exchange_type == "topic",
                auto_delete=binding.exchange_type == "fanout",
            ),
            lambda ch: ch.exchange_declare(binding.exchange, binding.exchange_type, passive=True),
        )
        if binding.exchange_type != "fanout":  # auto-delete: gone with its last queue
            self._known.add(("x", binding.exchange))

    def ensure(
        self, *, queues: Iterable[QueueSpec] = (), exchanges: Iterable[Binding] = ()
    ) -> None:
        """Declare what is missing (cached: declaring again costs nothing). A
        connection attempt that failed while this waited for the lock fails it too."""
        seen = self._attempts.seen()
        with self._lock:
            if self._conn is None:
                self._attempts.check(seen)
            try:
                for binding in exchanges:
                    self._exchange(binding)
                for spec in queues:
                    self._queue(spec)
            except BaseException:
                self.forget_locked()
                raise

    def _queue(self, spec: QueueSpec) -> None:
        if ("q", spec.name) in self._known:
            return
        arguments = {"x-expires": int(spec.expires * 1000)} if spec.expires else None
        self._tolerant(
            lambda ch: ch.queue_declare(spec.name, durable=spec.durable, auto_delete=False,
                                        arguments=arguments),
            lambda ch: ch.queue_declare(spec.name, passive=True),
        )
        for binding in spec.bindings:
            self._exchange(binding)
            channel = self._channel()
            channel.queue_bind(spec.name, binding.exchange, binding.routing_key)
            channel.close()
        self._known.add(("q", spec.name))

    def delete_queue(self, name: str) -> None:
        """Delete a queue the driver made for itself (errors ignored: it may be gone)."""
        with self._lock:
            self._known.discard(("q", name))
            try:
                channel = self._channel()
                channel.queue_delete(name)
                channel.close()
            except TRANSIENT_ERRORS:
                self.forget_locked()

    def forget(self) -> None:
        """Forget what was declared (the broker may have lost it) and disconnect."""
        with self._lock:
            self.forget_locked()

    def forget_locked(self) -> None:
        """:meth:`forget` for a caller already holding the lock."""
        self._known.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # tearing down a dead socket
                conn.collect()


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
        self._attempts = _Attempts()
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
        if not self._lock.acquire(timeout=self._patience):
            raise ConnectionError(
                f"the sending connection stayed busy for {self._patience:.1f}s")
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


def logger(url: TransportURL, **bound: Any) -> Any:
    """The structlog logger every part of the driver logs through."""
    return get_logger("dovecote.amqp1").bind(transport=str(url), **bound)
