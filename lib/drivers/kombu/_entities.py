"""The exchanges and queues of oslo.messaging's rabbit wire format, declared
with oslo.messaging's arguments for the same options, so both libraries can
declare the same names without ``PRECONDITION_FAILED``:

* ``rabbit_quorum_queue``: topic, server and notification queues are quorum
  queues (durable), with the delivery-limit and in-memory options;
* ``rabbit_transient_quorum_queue``: reply and fanout queues are quorum queues
  too (durable, not auto-delete: they expire after ``rabbit_transient_queues_ttl``
  unused), and the fanout exchange is durable;
* ``rabbit_stream_fanout``: one stream ``<topic>_fanout`` per topic replaces the
  per-listener fanout queues; each listener reads it from its own offset (see
  :class:`StreamOffsets`), and ``rabbit_transient_queues_ttl`` becomes the
  stream's retention (``x-max-age``);
* ``use_queue_manager``: reply and fanout queue names stable per host and
  process (see :mod:`._queue_manager`), not auto-delete;
* dovecote's own ``notification_queue_ttl`` and ``notification_queue_max_length``:
  ``x-message-ttl`` and ``x-max-length`` of notification queues (``<topic>.<priority>``
  and pools, not dead-letter queues), which otherwise keep what no listener takes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import _wire
from ._options import Exchange, Queue, binding
from ._queue_manager import QueueManager

if TYPE_CHECKING:
    from ._options import KombuOptions

__all__ = ["CLOCK_SLACK", "STREAM_OFFSET", "Entities", "StreamOffsets"]

#: Exchanges kept by name (topics and fanouts a process sends to are few).
_EXCHANGE_CACHE_SIZE = 1024
#: The consumer argument, and the header of each delivery, holding a stream offset.
STREAM_OFFSET = "x-stream-offset"
#: Seconds a pinned stream position is moved back: the broker's clock (which
#: stamps the stream's chunks) may be behind this host's by that much without
#: a cast being skipped; a few casts sent up to that long before the listener
#: first subscribed may be read in exchange (only after a reconnection that
#: came before its first delivery).
CLOCK_SLACK = 2.0


class Entities:
    """Builds (unbound) kombu exchanges and queues for a driver's options."""

    def __init__(self, opts: KombuOptions) -> None:
        self.opts = opts
        self._exchanges: dict[tuple[str, str], Any] = {}
        self._names = (QueueManager(opts.hostname, opts.processname)
                       if opts.use_queue_manager else None)

    def _exchange(self, kind: str, name: str, *, durable: bool, auto_delete: bool) -> Any:
        """An exchange, built once per name: every ``send`` names one, and
        kombu only reads it (binding it to a channel makes a copy)."""
        exchange = self._exchanges.get((kind, name))
        if exchange is None:
            if len(self._exchanges) >= _EXCHANGE_CACHE_SIZE:
                self._exchanges.clear()
            exchange = Exchange(name, type=kind, durable=durable, auto_delete=auto_delete)
            self._exchanges[kind, name] = exchange
        return exchange

    def _queue_arguments(self, *, ttl: int, quorum: bool) -> dict[str, Any]:
        opts = self.opts
        args: dict[str, Any] = {}
        if opts.rabbit_ha_queues:
            args["x-ha-policy"] = "all"
        if quorum:
            args["x-queue-type"] = "quorum"
            if opts.rabbit_quorum_delivery_limit:
                args["x-delivery-limit"] = opts.rabbit_quorum_delivery_limit
            if opts.rabbit_quorum_max_memory_length:
                args["x-max-in-memory-length"] = opts.rabbit_quorum_max_memory_length
            if opts.rabbit_quorum_max_memory_bytes:
                args["x-max-in-memory-bytes"] = opts.rabbit_quorum_max_memory_bytes
        if ttl > 0:
            args["x-expires"] = ttl * 1000
        return args

    def unique(self) -> str:
        """The distinct part of a reply or fanout queue's name: a hex uuid4, or
        ``<hostname>:<processname>:<n>`` with ``use_queue_manager``."""
        return self._names.next_name() if self._names is not None else _wire.new_id()

    # -- topic exchanges and queues ------------------------------------------
    def topic_exchange(self, name: str) -> Any:
        """The topic exchange RPC and notifications are published on."""
        return self._exchange("topic", name, durable=self.opts.durable,
                              auto_delete=self.opts.amqp_auto_delete)

    def topic_queue(self, name: str, bindings: list[tuple[str, str]]) -> Any:
        """A shared queue bound to ``(exchange, routing_key)`` pairs on topic
        exchanges: ``<topic>`` or ``<topic>.<server>`` (RPC)."""
        return self._shared_queue(name, bindings, self._queue_arguments(
            ttl=0, quorum=self.opts.rabbit_quorum_queue))

    def notification_queue(self, name: str, bindings: list[tuple[str, str]]) -> Any:
        """A notification queue: ``<topic>.<priority>``, or a pool bound to
        several of them. It keeps what no listener takes (as oslo.messaging's
        do) unless ``notification_queue_ttl`` / ``notification_queue_max_length``
        bound it; a pool (named unlike every key it is bound to) also expires
        unused after ``notification_pool_ttl``, when that is set."""
        pool = all(key != name for _, key in bindings)
        args = self._queue_arguments(ttl=self.opts.notification_pool_ttl if pool else 0,
                                     quorum=self.opts.rabbit_quorum_queue)
        args.update(self.opts.notification_queue_arguments())
        return self._shared_queue(name, bindings, args)

    def _shared_queue(self, name: str, bindings: list[tuple[str, str]],
                      arguments: dict[str, Any]) -> Any:
        exchanges = {name_: self.topic_exchange(name_) for name_, _ in bindings}
        options: dict[str, Any] = {
            "durable": self.opts.durable, "auto_delete": self.opts.amqp_auto_delete,
            "queue_arguments": arguments,
        }
        if len(bindings) == 1:
            exchange, key = bindings[0]
            return Queue(name, exchange=exchanges[exchange], routing_key=key, **options)
        # kombu drops a queue's own exchange once it has a list of bindings
        pairs = [binding(exchanges[exchange], routing_key=key) for exchange, key in bindings]
        return Queue(name, bindings=pairs, **options)

    # -- fanout ----------------------------------------------------------------
    def fanout_exchange(self, topic: str) -> Any:
        """``<topic>_fanout``: deleted with its last queue; durable with
        ``rabbit_transient_quorum_queue``, as oslo.messaging declares it."""
        return self._exchange("fanout", f"{topic}_fanout",
                              durable=self.opts.rabbit_transient_quorum_queue, auto_delete=True)

    def fanout_queue(self, topic: str) -> Any:
        """One listener's queue on ``<topic>_fanout``, or the topic's stream.

        By default ``<topic>_fanout_<hex uuid4>``, declared as oslo.messaging
        declares it: not auto-delete (so it keeps what arrives while its
        connection is being restored), expiring after
        ``rabbit_transient_queues_ttl`` should a crash leave it behind, and
        deleted by its listener on cleanup (see :meth:`temporary`)."""
        opts = self.opts
        exchange = self.fanout_exchange(topic)
        if opts.rabbit_stream_fanout:
            args: dict[str, Any] = {"x-queue-type": "stream"}
            if opts.rabbit_transient_queues_ttl > 0:
                args["x-max-age"] = f"{opts.rabbit_transient_queues_ttl}s"
            return Queue(f"{topic}_fanout", exchange=exchange, routing_key=topic,
                         durable=True, auto_delete=False, queue_arguments=args)
        quorum = opts.rabbit_transient_quorum_queue
        return Queue(
            f"{topic}_fanout_{self.unique()}", exchange=exchange, routing_key=topic,
            durable=quorum, auto_delete=False,
            queue_arguments=self._queue_arguments(
                ttl=opts.rabbit_transient_queues_ttl, quorum=quorum),
        )

    def temporary(self, queue: Any) -> bool:
        """Whether a listener deletes ``queue`` when it is cleaned up: a fanout
        queue of its own not meant to be reused (a stream is shared, a
        ``use_queue_manager`` name comes back on restart)."""
        return (isinstance(queue.exchange, Exchange) and queue.exchange.type == "fanout"
                and not self.opts.rabbit_stream_fanout and not self.opts.use_queue_manager)

    # -- replies and dead letters ------------------------------------------------
    def reply_queue_name(self) -> str:
        """A driver's reply queue name: ``reply_<hex uuid4>``, or stable with
        ``use_queue_manager``."""
        return f"reply_{self.unique()}"

    def reply_queue(self, name: str) -> Any:
        """A driver's reply queue on the default exchange, as oslo declares it:
        not auto-delete, expiring when unused; durable and quorum with
        ``rabbit_transient_quorum_queue``."""
        quorum = self.opts.rabbit_transient_quorum_queue
        return Queue(
            name, exchange=Exchange(""), routing_key=name, durable=quorum, auto_delete=False,
            queue_arguments=self._queue_arguments(
                ttl=self.opts.rabbit_transient_queues_ttl, quorum=quorum),
        )

    def dead_letter_queue(self, name: str) -> Any:
        """``<topic>.<priority>.dead``: durable, kept until someone reads it."""
        return Queue(
            name, exchange=Exchange(""), routing_key=name, durable=True,
            auto_delete=False,
        )


class StreamOffsets:
    """Where each stream a listener reads from resumes after a reconnection.

    A new listener starts at ``next``: it sees the casts sent after it
    subscribed, as a classic fanout queue would (oslo.messaging starts at
    ``last``, which can replay a few casts sent before the listener existed).
    That position means "now" to the broker, so it is pinned the moment it is
    asked for: until the listener has taken a delivery, every later
    subscription asks for the stream from that time (an AMQP timestamp offset,
    :data:`CLOCK_SLACK` earlier), and the casts sent while it was away are read
    after it is back instead of being skipped. Once a delivery was taken, it
    resumes exactly after the last one taken (its ``x-stream-offset`` + 1).

    RabbitMQ starts a timestamp offset at the chunk holding that time (its own
    clock, to the second), so a listener that reconnects before its first
    delivery may also get a few casts sent just before it first subscribed,
    never one it already took. After the broker cancelled the consumer (the
    stream was deleted and its offsets mean nothing any more) it starts over
    from ``last``, pinned the same way."""

    def __init__(self, queues: Any) -> None:
        self._next: dict[str, str | int | datetime.datetime] = {
            queue.name: "next" for queue in queues
            if (queue.queue_arguments or {}).get("x-queue-type") == "stream"
        }

    def __bool__(self) -> bool:
        return bool(self._next)

    def consumer_arguments(self, queue_name: str) -> dict[str, Any] | None:
        """The ``basic.consume`` arguments for ``queue_name`` (``None``: not a
        stream), asked for just before subscribing."""
        offset = self._next.get(queue_name)
        if offset is None:
            return None
        if isinstance(offset, str):  # "next" or "last": relative to now; pin it
            self._next[queue_name] = _pinned_time()
        return {STREAM_OFFSET: offset}

    def seen(self, queue_name: str, headers: Mapping[str, Any] | None) -> None:
        """A delivery from ``queue_name`` was taken: resume after it."""
        if queue_name in self._next and headers:
            offset = headers.get(STREAM_OFFSET)
            if isinstance(offset, int) and not isinstance(offset, bool):
                self._next[queue_name] = offset + 1

    def reset(self) -> None:
        """The broker cancelled the consumers: resume from the last chunk."""
        for name in self._next:
            self._next[name] = "last"


def _pinned_time() -> datetime.datetime:
    """The timestamp offset that stands for "now" in a later subscription:
    whole seconds (what an AMQP timestamp holds), :data:`CLOCK_SLACK` back."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=CLOCK_SLACK)
    return now.replace(microsecond=0)
