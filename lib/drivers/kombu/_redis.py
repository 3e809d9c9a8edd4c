"""What the kombu driver does differently on kombu's Redis transport
(``kombu+redis://``), kept apart from the AMQP code paths.

kombu's Redis channel subscribes its fanout queues (Redis PUB/SUB, where a
message reaches only the subscribers of that moment) lazily, on the first
``drain_events`` after ``basic_consume``. A server whose listener had not yet
polled would miss a fanout cast sent right after ``start()`` returned: so the
listener subscribes at once and waits for Redis to confirm, and ``listen()``
returns only once fanout casts reach it.

A Redis list holds whatever a peer ``LPUSH``-ed. kombu reads an item as a JSON
envelope (``{"body", "headers", "properties", ...}``) and raises from inside
``drain_events`` when it is not one, which would take the listener down with
it: :class:`RedisTransport`'s channel logs such an item
(``message.malformed``) and drops it (it is already off the list, and it is
no message anyone could answer or park), and the listener goes on. A
well-formed envelope around a malformed body reaches dovecote's decoding like
on every transport (refused, or parked as a dead letter).
"""

from __future__ import annotations

import functools
import sys
import time
from queue import Empty
from typing import Any

from ...observe._logging import get_logger

__all__ = ["REDIS_SCHEMES", "expire_unread", "redis_transport", "subscribe_now"]

#: The kombu schemes :func:`redis_transport` serves (``sentinel`` keeps kombu's own).
REDIS_SCHEMES = frozenset({"redis", "rediss"})
#: What reading an item that is no kombu envelope raises inside kombu (bad JSON
#: or text, a missing or mistyped key, a body that is no base64, a delivery tag
#: redis-py cannot send back: its ``DataError``, raised before anything is sent).
_MALFORMED: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, AttributeError, IndexError)
try:
    from redis.exceptions import DataError
except ImportError:  # no redis client: kombu's Redis transport cannot run anyway
    pass
else:
    _MALFORMED = (*_MALFORMED, DataError)

log = get_logger(__name__)


def subscribe_now(channel: Any, timeout: float) -> None:
    """Send the ``PSUBSCRIBE`` of ``channel``'s fanout queues now (kombu would
    at its first poll) and wait up to ``timeout`` seconds for Redis to confirm
    every pattern. A no-op on channels that are not kombu Redis channels, or
    that have no fanout queue or are already subscribed. Redis answers a
    ``PSUBSCRIBE`` with one confirmation per pattern before any message on
    them, so nothing published is read (and lost) here."""
    # What kombu's poller does for the channel at its first poll: connect the
    # pub/sub client, register its socket, send PSUBSCRIBE.
    cycle = getattr(getattr(channel, "connection", None), "cycle", None)
    register = getattr(cycle, "_register_LISTEN", None)
    queues = list(getattr(channel, "active_fanout_queues", ()) or ())
    if register is None or not queues or getattr(channel, "_in_listen", None):
        return
    expected = sum(len(channel._get_subscribe_topics(queue)) for queue in queues)
    register(channel)
    client = channel.subclient
    confirmed = 0
    deadline = time.monotonic() + timeout
    while confirmed < expected:
        left = deadline - time.monotonic()
        if left <= 0:
            log.warning("listener.subscribe_unconfirmed", confirmed=confirmed,
                        expected=expected, reason="Redis did not confirm in time; "
                        "fanout casts reach this listener once it does")
            return
        reply = client.get_message(timeout=left)
        if reply is not None and str(reply.get("type", "")).endswith("subscribe"):
            confirmed += 1


def expire_unread(channel: Any, queue: str, ttl: int) -> None:
    """Give ``queue``'s list an expiry of ``ttl`` seconds unless it has one.

    Redis has no mandatory publishing: a reply to a caller that is gone lands
    in a list nobody reads any more, and would stay there. A live caller's
    reads keep emptying (so deleting) its list, so the expiry only ever
    removes what nobody reads. Redis before 6.2 (no ``NX``) keeps the list."""
    kombu_redis = sys.modules.get("kombu.transport.redis")  # loaded by redis_transport()
    if kombu_redis is None or not isinstance(channel, kombu_redis.Channel) or ttl <= 0:
        return
    key = channel._q_for_pri(queue, 0)
    with channel.conn_or_acquire() as client:
        client.pexpire(key, ttl * 1000, nx=True)


@functools.cache
def redis_transport() -> type:
    """kombu's Redis transport with a channel that drops (and logs) list items
    that are no kombu envelope instead of raising them out of ``drain_events``.

    Built on first use: kombu's Redis module cannot even be imported without
    the Redis client (``dovecote[redis]``), which other transports do not need.
    Raises :class:`ImportError` saying what to install when it is missing."""
    try:
        from kombu.transport import redis as kombu_redis
    except (ImportError, AttributeError):  # kombu's module needs ``redis.Redis``
        raise ImportError("kombu's Redis transport needs the Redis client: "
                          "pip install 'dovecote[redis]'") from None

    class _Channel(kombu_redis.Channel):
        def _do_restore_message(self, payload: Any, exchange: Any, routing_key: Any,
                                pipe: Any, leftmost: bool = False) -> None:  # noqa: FBT001, FBT002 - kombu's signature
            """Put back an unacknowledged message (a closed channel's, or one
            unacknowledged for ``visibility_timeout``, by whichever consumer of
            the database looks first), unless its exchange and routing key,
            which the sender wrote into the message, name no queue. kombu would
            push to a key ``None`` there: Redis refuses the whole transaction,
            the entry stays, and every consumer of the database fails on it
            again, for good. Such a message is logged and dropped."""
            try:
                queues = [queue for queue in self._lookup(exchange, routing_key)  # type: ignore[no-untyped-call]
                          if isinstance(queue, str) and queue]
            except Exception:  # noqa: BLE001 - a hostile exchange or key: no queue
                queues = []
            if not queues:
                log.warning("message.malformed", transport="redis",
                            reason="an unacknowledged message names no queue to go back to "
                                   f"(exchange {str(exchange)[:80]!r}, routing key "
                                   f"{str(routing_key)[:80]!r}), dropped")
                return
            super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[no-untyped-call]

        def _brpop_read(self, **options: Any) -> Any:
            try:
                return super()._brpop_read(**options)  # type: ignore[no-untyped-call]
            except _MALFORMED as exc:
                log.warning("message.malformed", transport="redis",
                            reason=f"not a kombu message, dropped: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}")
                raise Empty from None

    class RedisTransport(kombu_redis.Transport):
        Channel = _Channel

    return RedisTransport
