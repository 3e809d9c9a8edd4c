"""The in-process broker behind ``memory://NAME``: exchanges, queues,
expiry, requeue and dead letters, shared by every transport of the process
with that name (see :mod:`dovecote.drivers.memory`)."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..._errors import MessageUndeliverable

__all__ = ["MemoryBroker", "StoredMessage", "get_broker"]


class StoredMessage:
    """A body waiting in a queue, with its headers and expiry."""

    __slots__ = ("body", "exchange", "expires_at", "headers", "routing_key")

    def __init__(
        self, body: str | bytes, headers: dict[str, Any] | None = None,
        expires_at: float | None = None, routing_key: str = "", exchange: str = "",
    ) -> None:
        self.body = body
        self.headers = headers or {}
        self.expires_at = expires_at
        self.routing_key = routing_key
        self.exchange = exchange  # published to ("": straight to its queue)


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
                    StoredMessage(body, dict(headers or {}), expires_at, routing_key, exchange)
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
