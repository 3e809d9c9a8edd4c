"""The driver contract every transport implements.

A driver publishes requests and notifications, and hands out listeners. A
listener's :meth:`Listener.poll` returns what arrived within a timeout, so
each listener can live in its own polling actor: a poll-style client (kombu's
``drain_events``) blocks in ``poll`` itself; a reactor-style client (Qpid
Proton's container) runs its reactor in a thread of its own and ``poll``
waits on the queue that the reactor fills. Drivers never import actors and
know nothing about threads beyond what their client library needs.

Every body on the wire is :mod:`dovecote._wire`'s JSON; ``message`` dicts
handed to ``send`` are plain requests (``method``, ``args``, optional
``namespace`` and ``version``) or notification bodies.
"""

from __future__ import annotations

import abc
import contextlib
import heapq
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .. import _wire
from .._errors import MessageDeliveryFailure, MessagingTimeout
from ..observe._logging import get_logger
from ._decoding import MAX_ID_LENGTH, decode_reply, encoding_problem

if TYPE_CHECKING:
    from .._target import Target
    from .._url import TransportURL
    from ..observe._probes import Source

__all__ = [
    "CALL_MONITOR_RANGE",
    "SERVER_RETRIES",
    "Driver",
    "IncomingMessage",
    "Listener",
    "PendingReply",
    "UnsendableReply",
]

#: How many times a driver retries what a server publishes about a message it
#: took (a reply, a heartbeat, a requeue, a dead letter) unless the transport
#: sets ``max_retries``: bounded, so a server can stop during a broker outage
#: (what could not be requeued or parked is released: the broker redelivers it).
SERVER_RETRIES = 3

#: The call-monitor timeouts (``_timeout``, seconds) a server honours; anything
#: else (not a number, infinite, 1e12, 1e-9) is logged and treated as absent.
CALL_MONITOR_RANGE = (1.0, 86400.0)


class UnsendableReply(ValueError):
    """A reply body could not be encoded (a result JSON cannot hold)."""


class PendingReply:
    """The caller's side of one call: the driver delivers replies and heartbeats
    for ``msg_id`` here, and the caller waits in :meth:`wait`.

    ``timeout`` bounds the whole call; ``call_monitor_timeout`` bounds the
    silence between two heartbeats from the server. One waiter at a time (the
    calling thread); a bare lock serves as the wake-up signal because a call is
    made per request and a ``Condition`` costs several times more to build.
    """

    __slots__ = ("_last_sign", "_reply", "_signal", "call_monitor_timeout", "deadline",
                 "msg_id", "timeout")

    def __init__(
        self, msg_id: str, *, timeout: float | None = None,
        call_monitor_timeout: float | None = None,
    ) -> None:
        self.msg_id = msg_id
        self.timeout = timeout
        self.call_monitor_timeout = call_monitor_timeout or None
        self._reply: Mapping[str, Any] | None = None
        self._signal = threading.Lock()
        self._signal.acquire()  # released (once) by each delivery to wake the waiter
        now = time.monotonic()
        self.deadline = None if timeout is None else now + timeout
        self._last_sign = now

    def sent(self) -> None:
        """The request is on its way: the call monitor counts the server's
        silence from now, not from before the driver was ready to send."""
        self._last_sign = time.monotonic()

    def deliver(self, reply: Mapping[str, Any]) -> None:
        """Hand over a reply body: a heartbeat (``ending`` false, no result or
        failure) renews the call monitor; anything else is the answer."""
        self._last_sign = time.monotonic()
        is_heartbeat = (
            reply.get("ending") is False and reply.get("result") is None
            and not reply.get("failure")
        )
        if not is_heartbeat and self._reply is None:
            self._reply = reply
        with contextlib.suppress(RuntimeError):  # already signalled, not yet seen
            self._signal.release()

    def wait(self, patience: float | None = None) -> Mapping[str, Any] | None:
        """The answer; ``None`` if ``patience`` seconds pass first (the call
        goes on); :class:`MessagingTimeout` once the call itself timed out."""
        give_up = None if patience is None else time.monotonic() + patience
        while self._reply is None:
            now = time.monotonic()
            monitor = (
                self._last_sign + self.call_monitor_timeout if self.call_monitor_timeout
                else None
            )
            if self.deadline is not None and now >= self.deadline:
                raise MessagingTimeout(
                    f"Timed out waiting for a reply to message ID {self.msg_id}: "
                    f"no reply within {self.timeout}s"
                )
            if monitor is not None and now >= monitor:
                raise MessagingTimeout(
                    f"Timed out waiting for a reply to message ID {self.msg_id}: no "
                    f"heartbeat within call_monitor_timeout={self.call_monitor_timeout}s"
                )
            if give_up is not None and now >= give_up:
                return None
            limit = min(t for t in (self.deadline, monitor, give_up, now + 3600.0)
                        if t is not None)
            self._signal.acquire(timeout=limit - now)
        return self._reply


_NO_ORIGIN: dict[str, str] = {}
_log = get_logger(__name__)


class IncomingMessage(abc.ABC):
    """One message a listener took: a request or a notification.

    ``error`` is set, and ``message`` empty, when the body could not be
    decoded; the server logs it and, for a call, still replies with a failure
    when ``msg_id`` is known. ``redeliveries`` counts earlier ``requeue()``
    calls; ``dead_letter_reason`` is the reason a message read back from a
    dead-letter queue was parked there. Every method may be called from any
    thread: a driver whose client is not thread-safe hands the work to its
    listener's thread.
    """

    __slots__ = ("ctxt", "dead_letter_reason", "error", "message", "msg_id", "origin",
                 "quiet", "redeliveries", "source", "trace")

    def __init__(
        self, *, ctxt: dict[str, Any], message: dict[str, Any], msg_id: str | None = None,
        error: str | None = None, redeliveries: int = 0, dead_letter_reason: str | None = None,
    ) -> None:
        self.dead_letter_reason = dead_letter_reason
        #: Log fields of the listener that took it (``listener``, ``transport``),
        #: set by the server's listener actor.
        self.origin: dict[str, str] = _NO_ORIGIN
        #: What the listener knows of it for probes (its transport's
        #: ``messaging.system``, its RPC topic), set by the server's listener actor.
        self.source: Source | None = None
        #: The id its events carry (``dovecote._handling.trace_id``), once known.
        self.trace: str | None = None
        #: A control-endpoint request: its debug events are not recorded.
        self.quiet = False
        self.ctxt = ctxt
        self.message = message
        self.msg_id = msg_id
        self.error = error
        self.redeliveries = redeliveries

    def route(self) -> tuple[str, str, str]:
        """``(exchange, routing key, queue)`` it came through, as far as the
        driver knows (``""`` where it does not): what a trace names as its
        destination. Read only while a probe watches."""
        return "", "", ""

    @property
    def wants_reply(self) -> bool:
        """Whether the sender waits for a reply (a call)."""
        return self.msg_id is not None

    @property
    def call_monitor_timeout(self) -> float | None:
        """The caller's call-monitor timeout (heartbeat every half of it): a
        finite number of seconds within ``CALL_MONITOR_RANGE``, else ``None``
        (what a peer sends here sets a timer in this process)."""
        value = self.message.get("_timeout")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = CALL_MONITOR_RANGE
            if low <= value <= high:  # also false for NaN
                return float(value)
        return None

    @property
    def reply_q(self) -> str | None:
        """Where the caller waits for the answer, if this is a call that says."""
        reply_q = self.message.get("_reply_q")
        if self.msg_id and isinstance(reply_q, str) and 0 < len(reply_q) <= MAX_ID_LENGTH:
            return reply_q
        return None

    def reply(self, result: Any = None, failure: str | None = None) -> None:
        """Send the answer; ``failure`` is failure JSON text (see ``_wire``).
        Raises :class:`UnsendableReply` when ``result`` cannot be encoded (the
        caller can then still be sent a failure), and what the driver raises
        when publishing fails."""
        self._reply_body({"result": result, "failure": failure, "ending": True})

    def heartbeat(self) -> None:
        """Tell the caller the call is still running."""
        self._reply_body({"result": None, "failure": None, "ending": False})

    def _reply_body(self, body: dict[str, Any]) -> None:
        reply_q = self.reply_q
        if reply_q is None:
            return  # a cast, or a call whose reply queue is unknown
        body["_msg_id"] = self.msg_id
        body["_unique_id"] = _wire.new_id()
        try:
            data = self.encode_reply(body)
        except Exception as exc:
            raise UnsendableReply(f"{type(exc).__name__}: {exc}") from exc
        self.publish_reply(reply_q, data)

    def encode_reply(self, body: dict[str, Any]) -> str:
        """A reply body as text for the wire (oslo.messaging's envelope)."""
        return _wire.encode_envelope(body)

    @abc.abstractmethod
    def publish_reply(self, reply_q: str, data: str) -> None:
        """Publish an encoded reply or heartbeat to the queue ``reply_q`` on
        the default exchange."""

    @abc.abstractmethod
    def acknowledge(self) -> None:
        """Settle the message: it is done and leaves the broker."""

    @abc.abstractmethod
    def requeue(self) -> None:
        """Give the message back to its queue, counting one more redelivery."""

    @abc.abstractmethod
    def dead_letter(self, reason: str) -> str:
        """Park the message on its dead-letter queue with ``reason``; return the
        queue's name."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the message back to its queue unchanged (AMQP's reject with
        requeue): the broker delivers it again, its redelivery count as it was.
        The settlement of last resort, when a requeue or a dead letter could not
        be published: it never raises, and a driver that cannot send it drops
        the channel instead, which gives back everything it had not settled.
        A message already settled (or a request, settled when taken) is left be."""


class Listener(abc.ABC):
    """Receives what is sent to one target (or a set of notification targets)."""

    @abc.abstractmethod
    def poll(self, timeout: float, max_messages: int) -> list[IncomingMessage]:
        """Return up to ``max_messages`` messages, waiting at most ``timeout``
        seconds for the first one; an empty list when none came."""

    def keepalive(self, timeout: float) -> None:
        """Keep the connection serviced for up to ``timeout`` seconds (0: do what
        is due and return) without taking messages: heartbeats, settlements
        queued from other threads, noticing a lost connection. The server calls
        it while it has no credit to poll with, and while a stopping listener
        waits for what it took to be finished. A driver with nothing to service
        just waits (the default)."""
        if timeout > 0:
            threading.Event().wait(timeout)

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop taking new messages (those already taken may still be settled,
        and :meth:`keepalive` still services the connection)."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release the listener's connection and anything it declared for itself."""


class Driver(abc.ABC):
    """A transport: found by URL scheme through the ``dovecote.drivers``
    entry-point group. Options come from the URL query and ``get_transport``
    keyword arguments (keyword arguments win)."""

    #: True when ``cast`` returns only after the broker has the message.
    confirms: ClassVar[bool] = True
    #: The options the driver reads (``control_exchange`` is every driver's):
    #: another one is logged as ``transport.unknown_options`` when the transport
    #: is built, so a misspelled ``prefetch_cont`` is noticed rather than ignored.
    #: ``None``, for a driver that does not list them, checks nothing.
    option_names: ClassVar[frozenset[str] | None] = None

    def __init__(
        self, url: TransportURL, *, control_exchange: str = "openstack",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.control_exchange = control_exchange
        self.options: dict[str, Any] = dict(url.query)
        self.options.update(options or {})
        if self.option_names is not None:
            unknown = sorted(set(self.options) - self.option_names - {"control_exchange"})
            if unknown:
                _log.warning("transport.unknown_options", transport=str(url), options=unknown,
                             hint=f"the {url.scheme}:// driver ignores them: check their "
                                  "spelling")
        self._pending: dict[str, PendingReply] = {}
        self._expiry: list[tuple[float, str]] = []  # (deadline, msg_id), a heap
        self._expiry_lock = threading.Lock()
        #: Set by :meth:`cleanup`: the transport cannot be used any more.
        self.closed = False

    @property
    def messaging_system(self) -> str:
        """The broker this driver talks to, as OpenTelemetry's conventions name
        it (``messaging.system`` of dovecote's spans): the URL scheme unless the
        driver knows better."""
        return self.url.scheme

    def route(self, target: Target) -> tuple[str, str]:
        """``(exchange, routing key)`` a message to ``target`` is published
        with, in oslo.messaging's RabbitMQ layout, which every dovecote driver
        keeps: ``<topic>_fanout`` (routing key ``<topic>``) for a fanout,
        ``<topic>.<server>`` for one server; a notification's target topic is
        already ``<topic>.<priority>``. What a trace names as the destination."""
        topic = str(target.topic or "")
        if target.fanout:
            return f"{topic}_fanout", topic
        key = f"{topic}.{target.server}" if target.server else topic
        return target.exchange or self.control_exchange, key

    def ensure_open(self, doing: str) -> None:
        """Raise :class:`MessageDeliveryFailure` once the transport was cleaned up."""
        if self.closed:
            msg = f"Transport {self.url} was cleaned up: create a new transport to {doing}"
            raise MessageDeliveryFailure(msg)

    def expect_reply(self, reply: PendingReply) -> None:
        """Route replies for ``reply.msg_id`` to ``reply`` (called before ``send``).
        A call whose caller never collects its answer (a ``call_async`` future
        never read) is forgotten once its timeout has passed."""
        self._pending[reply.msg_id] = reply
        now = time.monotonic()
        with self._expiry_lock:
            if reply.deadline is not None:
                heapq.heappush(self._expiry, (reply.deadline, reply.msg_id))
            while self._expiry and self._expiry[0][0] < now:
                self._pending.pop(heapq.heappop(self._expiry)[1], None)

    def forget(self, reply: PendingReply) -> None:
        """Stop routing replies for ``reply``: the caller has its answer or gave up."""
        self._pending.pop(reply.msg_id, None)

    def deliver_reply(self, body: object, *, content_encoding: object = None,
                      unreadable: str | None = None) -> None:
        """Hand a reply body from the driver's reply queue to the waiting caller.
        Never raises: replies nobody waits for any more, and bodies that are not
        replies or cannot be read (see :func:`~._decoding.unpack` for the
        keyword arguments), are dropped."""
        problem = unreadable or encoding_problem(content_encoding)
        if problem is not None:
            _log.warning("reply.malformed", transport=str(self.url), reason=problem)
            return
        reply = decode_reply(body)
        if reply is None:
            return
        msg_id = reply.get("_msg_id")
        pending = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if pending is not None:
            pending.deliver(reply)

    @abc.abstractmethod
    def send(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        reply: PendingReply | None = None, timeout: float | None = None,
        call_monitor_timeout: float | None = None, retry: int | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish a request. With ``reply``, it is a call: the caller has
        called :meth:`expect_reply`; the driver names its reply queue in the
        request and passes what arrives there to :meth:`deliver_reply`.
        ``timeout`` bounds how long a call may wait at the broker."""

    @abc.abstractmethod
    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        """Publish a notification to ``<topic>.<priority>`` (``target.topic``
        already holds both); version 2.0 wraps it in the envelope, 1.0 does not."""

    @abc.abstractmethod
    def listen(self, target: Target) -> Listener:
        """A listener for requests to ``target`` (topic, topic.server and fanout)."""

    @abc.abstractmethod
    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        """A listener for notifications; members of one ``pool`` share them."""

    @abc.abstractmethod
    def listen_dead_letters(self, queue: str) -> Listener:
        """A notification listener on the dead-letter queue ``queue``
        (``<topic>.<priority>.dead``), to read or replay what was parked."""

    def delete_queue(self, name: str) -> None:  # noqa: B027 - optional hook
        """Delete the queue ``name`` if the transport can (a listener's own pool,
        say, that should not outlive it); the default does nothing."""

    def cleanup(self) -> None:  # noqa: B027 - optional hook
        """Close connections and threads the driver holds."""

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """``(exists, messages)`` of the queue ``name``, found without creating
        it (a passive declare): whether it exists, and how many messages wait
        there ready for a consumer (``(False, 0)``: no such queue); ``None``
        when this transport cannot tell (the default). The ``dovecote`` command
        reads dead letters with it without declaring a queue for a mistyped
        topic, bounds a replay, and says at once that no server of a topic
        exists where the transport cannot return an unroutable message."""
        return None
