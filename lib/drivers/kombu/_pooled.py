"""Publishing through a pool of kombu connections: for kombu transports other
than AMQP 0-9-1 (Redis, SQS, ...), where kombu's own ``Connection.ensure``
retries, fails over and (where the transport has them) waits for confirms."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..._errors import MessageDeliveryFailure, MessageUndeliverable
from ._options import Exchange, Producer, connection_errors, maybe_declare

__all__ = ["PooledPublisher"]


class _Publication:
    """One publish, retried by ``Connection.ensure``: declares what it needs on
    the connection's current channel, publishes, and notes a basic.return."""

    def __init__(self, conn: Any, declare: Sequence[Any], **publish: Any) -> None:
        self.conn = conn
        self.declare = declare
        self.publish = publish
        self.returned: list[BaseException] = []

    def revive(self, channel: Any) -> None:
        """kombu's hook after a reconnection: ``run`` always uses the default channel."""

    def _on_return(self, exc: BaseException, *_args: Any) -> None:
        self.returned.append(exc)

    def run(self) -> None:
        channel = self.conn.default_channel
        for entity in self.declare:
            maybe_declare(entity, channel)
        producer = _PRODUCERS.get(channel)
        if producer is None:  # one per channel: building one costs a copy of its exchange
            producer = _PRODUCERS[channel] = Producer(channel, auto_declare=False)
        self.returned.clear()
        events = getattr(channel, "events", None) if self.publish["mandatory"] else None
        if events is not None:
            events["basic_return"].add(self._on_return)
        try:
            producer.publish(**self.publish)
        finally:
            if events is not None:
                events["basic_return"].discard(self._on_return)


#: The producer of each publishing channel (a pooled connection's default
#: channel is used by one thread at a time; a channel that is gone drops out).
_PRODUCERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class PooledPublisher:
    """``publish`` on a kombu transport other than AMQP: a connection of
    ``pool`` per publish, kombu's own confirm (where it has one) and retries.

    ``errback`` is kombu's errback while (re)connecting (it logs, and may wait
    a little longer); ``failure`` builds the error a failed publish raises."""

    def __init__(
        self, pool: Any, *, confirm_timeout: float,
        errback: Callable[[BaseException, float], None],
        failure: Callable[[str, BaseException], MessageDeliveryFailure],
    ) -> None:
        self._pool = pool
        self._confirm_timeout = confirm_timeout
        self._errback = errback
        self._failure = failure

    def publish(
        self, exchange: Any, routing_key: str, body: str | bytes, *,
        headers: Mapping[str, Any] | None, expiration: float | None, mandatory: bool,
        declare: Sequence[Any], policy: dict[str, Any], content_type: str,
        content_encoding: str,
    ) -> None:
        """Publish once, retried as ``policy`` (kombu's retry arguments) says;
        raises :class:`MessageUndeliverable` when a mandatory message was
        returned, the ``failure`` callback's error when the retries ran out."""
        conn = self._pool.acquire(block=True)
        try:
            job = _Publication(
                conn, declare, body=body, exchange=exchange, routing_key=routing_key,
                headers=dict(headers or {}), delivery_mode=2, expiration=expiration,
                mandatory=mandatory, content_type=content_type,
                content_encoding=content_encoding, confirm_timeout=self._confirm_timeout,
            )
            conn.ensure_connection(errback=self._errback, **policy)
            conn.ensure(job, job.run, errback=self._errback, **policy)()
        except connection_errors(conn) as exc:
            conn.collect()  # a channel closed by the broker must not go back to the pool
            name = exchange.name if isinstance(exchange, Exchange) else exchange
            raise self._failure(
                f"Could not publish to exchange {name!r} with routing key {routing_key!r}", exc,
            ) from None
        finally:
            conn.release()
        if job.returned:
            name = exchange.name if isinstance(exchange, Exchange) else exchange
            raise MessageUndeliverable(job.returned[0], name, routing_key, body)
