"""``memory://NAME``: an in-process broker, the embedded default.

It models the part of AMQP that oslo.messaging's wire format uses: topic and
fanout exchanges with exact routing keys, named queues shared by competing
consumers, per-listener auto-delete fanout queues, the default exchange for
replies, message expiry, requeue with a redelivery count, and dead-letter
queues. Bodies are JSON text, decoded by the same function as on RabbitMQ,
so results and arguments travel exactly as they would over a broker and bad
input is judged the same way; the ``oslo.version`` envelope is left out since
these bodies never leave the process (an enveloped body put in a queue is
understood too). Receivers block on one condition variable and wake when a
message arrives: nothing sleeps.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _wire
from .._errors import MessageUndeliverable
from ._decoding import ERROR_HEADER, REDELIVERIES_HEADER, unpack
from .base import Driver, IncomingMessage, Listener, PendingReply

if TYPE_CHECKING:
    from .._target import Target
    from .._url import TransportURL

__all__ = ["MemoryBroker", "MemoryDriver", "StoredMessage", "get_broker"]


class StoredMessage:
    """A body waiting in a queue, with its headers and expiry."""

    __slots__ = ("body", "expires_at", "headers", "routing_key")

    def __init__(
        self, body: str | bytes, headers: dict[str, Any] | None = None,
        expires_at: float | None = None, routing_key: str = "",
    ) -> None:
        self.body = body
        self.headers = headers or {}
        self.expires_at = expires_at
        self.routing_key = routing_key


class MemoryBroker:
    """One named in-process broker. All state is guarded by one condition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._queues: dict[str, collections.deque[StoredMessage]] = {}
        self._bindings: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self._fanout: dict[str, set[str]] = collections.defaultdict(set)
        self._reply_handlers: dict[str, Callable[[str | bytes], None]] = {}
        #: Listeners consuming each queue: competing consumers share what waits.
        self._consumers: collections.Counter[str] = collections.Counter()
        self._waiting = 0  # receivers blocked in take(): publishing wakes only if any
        #: Receivers blocked on each queue, and who took from it last: a listener
        #: that just took from a shared queue lets a waiting one take next.
        self._waiting_on: collections.Counter[str] = collections.Counter()
        self._last_taker: dict[str, int] = {}

    # -- declarations ---------------------------------------------------------
    def declare_queue(self, queue: str, bindings: Sequence[tuple[str, str]] = ()) -> None:
        """Create ``queue`` if missing and bind it to ``(exchange, routing_key)`` pairs."""
        with self._cond:
            self._queues.setdefault(queue, collections.deque())
            for key in bindings:
                self._bindings[key].add(queue)

    def declare_fanout_queue(self, exchange: str, queue: str) -> None:
        """Create ``queue`` and bind it to the fanout exchange ``exchange``."""
        with self._cond:
            self._queues.setdefault(queue, collections.deque())
            self._fanout[exchange].add(queue)

    def delete_queue(self, queue: str) -> None:
        """Remove ``queue``, its bindings and its messages."""
        with self._cond:
            self._queues.pop(queue, None)
            self._last_taker.pop(queue, None)
            for queues in itertools.chain(self._bindings.values(), self._fanout.values()):
                queues.discard(queue)

    def queue_depth(self, queue: str) -> int:
        """How many messages wait in ``queue`` (0 for a queue that does not exist)."""
        with self._cond:
            return len(self._queues.get(queue, ()))

    def queue_names(self) -> list[str]:
        """Every declared queue."""
        with self._cond:
            return sorted(self._queues)

    def drain(self, queue: str) -> list[StoredMessage]:
        """Take every message out of ``queue`` (e.g. to read dead letters)."""
        with self._cond:
            found = self._queues.get(queue)
            if not found:
                return []
            out = list(found)
            found.clear()
            return out

    # -- publishing -------------------------------------------------------------
    def publish(
        self, exchange: str, routing_key: str, body: str | bytes, *,
        headers: dict[str, Any] | None = None, ttl: float | None = None,
        fanout: bool = False, mandatory: bool = False,
    ) -> int:
        """Route ``body`` like AMQP; return how many queues took it."""
        expires_at = time.monotonic() + ttl if ttl else None
        handler = None
        with self._cond:
            if exchange == "" and routing_key in self._reply_handlers:
                handler = self._reply_handlers[routing_key]
                queues: Sequence[str] = ()
            elif exchange == "":
                queues = [routing_key] if routing_key in self._queues else []
            elif fanout:
                queues = list(self._fanout.get(exchange, ()))
            else:
                queues = list(self._bindings.get((exchange, routing_key), ()))
            for queue in queues:
                self._queues[queue].append(
                    StoredMessage(body, dict(headers or {}), expires_at, routing_key)
                )
            if queues and self._waiting:
                self._cond.notify_all()
        if handler is not None:
            handler(body)
            return 1
        if not queues and mandatory:
            raise MessageUndeliverable(None, exchange, routing_key, body)
        return len(queues)

    def put(self, queue: str, body: str | bytes, headers: dict[str, Any] | None = None) -> None:
        """Append a raw body straight to ``queue`` (tests use it for bad input)."""
        with self._cond:
            self._queues.setdefault(queue, collections.deque()).append(
                StoredMessage(body, dict(headers or {}))
            )
            self._cond.notify_all()

    def requeue(self, queue: str, stored: StoredMessage) -> None:
        """Put a taken message back at the tail of ``queue`` if it still exists."""
        with self._cond:
            if queue in self._queues:
                self._queues[queue].append(stored)
                self._cond.notify_all()

    def release(self, queue: str, stored: StoredMessage) -> None:
        """Put a taken message back at the head of ``queue``, unchanged, as a
        broker does with a delivery rejected with requeue (if ``queue`` still exists)."""
        with self._cond:
            if queue in self._queues:
                self._queues[queue].appendleft(stored)
                self._cond.notify_all()

    def set_reply_handler(self, queue: str, handler: Callable[[str | bytes], None] | None) -> None:
        """Deliver what is published to ``queue`` on the default exchange to ``handler``."""
        with self._cond:
            if handler is None:
                self._reply_handlers.pop(queue, None)
            else:
                self._reply_handlers[queue] = handler

    # -- consuming --------------------------------------------------------------
    def take(
        self, queues: Sequence[str], max_messages: int, timeout: float,
        stopped: threading.Event,
    ) -> list[tuple[str, StoredMessage]]:
        """Take up to ``max_messages`` from ``queues``, waiting at most ``timeout``.

        ``stopped`` also names the taker, for the turns of competing consumers.
        """
        deadline = time.monotonic() + timeout
        taker = id(stopped)
        with self._cond:
            while True:
                taken = list(itertools.islice(self._take_ready(queues, taker), max_messages))
                if taken or stopped.is_set():
                    if taken and self._waiting:
                        self._cond.notify_all()  # a skipped competitor may take now
                    return taken
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._waiting += 1
                self._waiting_on.update(queues)
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
                    self._waiting_on.subtract(queues)

    def consume(self, queues: Sequence[str], *, add: bool) -> None:
        """Count a listener in (or out) as a consumer of ``queues``."""
        with self._cond:
            for queue in queues:
                self._consumers[queue] += 1 if add else -1
                if self._consumers[queue] <= 0:
                    del self._consumers[queue]

    def _take_ready(self, queues: Sequence[str], taker: int) -> Iterator[tuple[str, StoredMessage]]:
        """Round-robin over ``queues``. Of a queue several listeners consume, one
        take gets its share only (what waits, divided by the consumers, rounded
        up), and a listener that took last lets a waiting competitor go first, as
        a broker spreads a burst over competing consumers."""
        now = time.monotonic()
        live: list[list[Any]] = []
        for name in queues:
            found = self._queues.get(name)
            if found:
                share = self._consumers.get(name, 1)
                if share > 1:
                    if self._last_taker.get(name) == taker and self._waiting_on[name] > 0:
                        continue
                    self._last_taker[name] = taker
                live.append([name, found, -(-len(found) // share) if share > 1 else len(found)])
        while live:
            for entry in list(live):
                name, found, _ = entry
                stored = None
                while found:
                    candidate = found.popleft()
                    if candidate.expires_at is None or candidate.expires_at > now:
                        stored = candidate
                        break
                if stored is not None:
                    yield name, stored
                    entry[2] -= 1
                if not found or entry[2] <= 0:
                    live.remove(entry)

    def wake(self) -> None:
        """Wake every waiting receiver (a listener is stopping)."""
        with self._cond:
            self._cond.notify_all()


_brokers: dict[str, MemoryBroker] = {}
_brokers_lock = threading.Lock()


def get_broker(name: str = "") -> MemoryBroker:
    """The in-process broker for ``memory://NAME`` (created on first use)."""
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = MemoryBroker(name)
        return broker


class MemoryIncomingMessage(IncomingMessage):
    """A message taken from a memory queue."""

    __slots__ = ("_listener", "_queue", "_settled", "_stored")

    def __init__(
        self, listener: MemoryListener, queue: str, stored: StoredMessage, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._listener = listener
        self._queue = queue
        self._stored = stored
        self._settled = False

    def encode_reply(self, body: dict[str, Any]) -> str:
        return _wire.dumps(body)  # no envelope: it never leaves the process

    def publish_reply(self, reply_q: str, data: str) -> None:
        self._listener.broker.publish("", reply_q, data)

    def acknowledge(self) -> None:
        self._settled = True
        self._listener.unsettled.pop(id(self), None)

    def requeue(self) -> None:
        if self._settled:
            return
        self.acknowledge()
        headers = dict(self._stored.headers)
        headers[REDELIVERIES_HEADER] = self.redeliveries + 1
        self._listener.broker.requeue(
            self._queue, StoredMessage(self._stored.body, headers, None, self._stored.routing_key)
        )

    def dead_letter(self, reason: str) -> str:
        queue = f"{self._stored.routing_key or self._queue}.dead"
        headers = dict(self._stored.headers)
        headers[ERROR_HEADER] = reason
        self._listener.broker.put(queue, self._stored.body, headers)
        self.acknowledge()
        return queue

    def release(self) -> None:
        if self._settled:
            return
        self.acknowledge()
        self._listener.broker.release(self._queue, self._stored)


class MemoryListener(Listener):
    """Takes messages from a set of memory queues."""

    def __init__(
        self, broker: MemoryBroker, queues: Sequence[str], *,
        auto_delete: Sequence[str] = (), notifications: bool = False,
    ) -> None:
        self.broker = broker
        self.queues = tuple(queues)
        self._auto_delete = tuple(auto_delete)
        self._notifications = notifications
        self._stopped = threading.Event()
        self._closed = False
        self.unsettled: dict[int, MemoryIncomingMessage] = {}
        broker.consume(self.queues, add=True)

    def poll(self, timeout: float, max_messages: int) -> list[IncomingMessage]:
        taken = self.broker.take(self.queues, max_messages, timeout, self._stopped)
        out: list[IncomingMessage] = []
        for queue, stored in taken:
            incoming = self._decode(queue, stored)
            self.unsettled[id(incoming)] = incoming
            out.append(incoming)
        return out

    def _decode(self, queue: str, stored: StoredMessage) -> MemoryIncomingMessage:
        decoded = unpack(stored.body, notifications=self._notifications, headers=stored.headers)
        return MemoryIncomingMessage(self, queue, stored, **decoded._asdict())

    def stop(self) -> None:
        self._stopped.set()
        self.broker.wake()

    def cleanup(self) -> None:
        self.stop()
        if self._closed:
            return
        self._closed = True
        self.broker.consume(self.queues, add=False)
        for incoming in list(self.unsettled.values()):
            incoming.requeue()
        for queue in self._auto_delete:
            self.broker.delete_queue(queue)


class MemoryDriver(Driver):
    """The in-process driver; ``memory://NAME`` selects broker ``NAME``."""

    confirms = True

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        name = url.hosts[0].hostname or "" if url.hosts else ""
        self.broker = get_broker(name)
        self._reply_q = f"reply_{_wire.new_id()}"
        self.broker.set_reply_handler(self._reply_q, self.deliver_reply)

    def _exchange(self, target: Target) -> str:
        return target.exchange or self.control_exchange

    def send(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        reply: PendingReply | None = None, timeout: float | None = None,
        call_monitor_timeout: float | None = None, retry: int | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        del retry  # an in-process broker is always reachable
        self.ensure_open("send")
        msg_id = reply.msg_id if reply is not None else None
        packed = _wire.pack_request(
            ctxt, message, msg_id=msg_id, reply_q=self._reply_q if reply else None,
            call_monitor_timeout=call_monitor_timeout,
        )
        body = _wire.dumps(packed)
        topic = str(target.topic)
        mandatory = bool((transport_options or {}).get("at_least_once"))
        if target.fanout:
            self.broker.publish(f"{topic}_fanout", "", body, fanout=True)
        else:
            key = f"{topic}.{target.server}" if target.server else topic
            self.broker.publish(
                self._exchange(target), key, body, ttl=timeout if reply else None,
                mandatory=mandatory,
            )

    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        del retry
        self.ensure_open("send")
        packed = _wire.pack_notification(ctxt, message)
        body = _wire.encode_envelope(packed) if version >= 2.0 else _wire.dumps(packed)
        # Like oslo.messaging (and the kombu driver), declare <topic>.<priority> so a
        # notification sent before any listener waits there instead of vanishing.
        exchange, key = self._exchange(target), str(target.topic)
        self.broker.declare_queue(key, [(exchange, key)])
        self.broker.publish(exchange, key, body)

    def listen(self, target: Target) -> Listener:
        topic = str(target.topic)
        exchange = self._exchange(target)
        self.broker.declare_queue(topic, [(exchange, topic)])
        queues = [topic]
        if target.server:
            server_queue = f"{topic}.{target.server}"
            self.broker.declare_queue(server_queue, [(exchange, server_queue)])
            queues.append(server_queue)
        fanout_queue = f"{topic}_fanout_{_wire.new_id()}"
        self.broker.declare_fanout_queue(f"{topic}_fanout", fanout_queue)
        queues.append(fanout_queue)
        return MemoryListener(self.broker, queues, auto_delete=[fanout_queue])

    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        queues: list[str] = []
        for target, priority in targets_and_priorities:
            key = f"{target.topic}.{priority}"
            queue = pool or key
            self.broker.declare_queue(queue, [(self._exchange(target), key)])
            if queue not in queues:
                queues.append(queue)
        return MemoryListener(self.broker, queues, notifications=True)

    def listen_dead_letters(self, queue: str) -> Listener:
        self.broker.declare_queue(queue)
        return MemoryListener(self.broker, [queue], notifications=True)

    def delete_queue(self, name: str) -> None:
        self.broker.delete_queue(name)

    def cleanup(self) -> None:
        self.closed = True
        self.broker.set_reply_handler(self._reply_q, None)
        self._pending.clear()

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """What the in-process broker holds (it always knows)."""
        if name not in self.broker.queue_names():
            return False, 0
        return True, self.broker.queue_depth(name)
