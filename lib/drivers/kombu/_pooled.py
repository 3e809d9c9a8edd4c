"""Publishing through a pool of kombu connections: for kombu transports other
than AMQP 0-9-1 (Redis, SQS, ...), where kombu's own ``Connection.ensure``
retries, fails over and (where the transport has them) waits for confirms."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._errors import MessageUndeliverable
from ._listener import connection_errors
from ._options import Exchange, Producer, maybe_declare

if TYPE_CHECKING:
    from ._driver import KombuDriver

__all__ = ["publish_pooled"]


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


def publish_pooled(
    driver: KombuDriver, exchange: Any, routing_key: str, body: str | bytes, *,
    headers: Mapping[str, Any] | None, expiration: float | None, mandatory: bool,
    declare: Sequence[Any], retry: int | None, content_type: str, content_encoding: str,
) -> None:
    """``publish`` on a kombu transport other than AMQP: a pooled connection
    per publish, kombu's own confirm (where it has one) and retries."""
    policy = driver.retry_policy(retry)
    conn = driver.pool.acquire(block=True)
    try:
        job = _Publication(
            conn, declare, body=body, exchange=exchange, routing_key=routing_key,
            headers=dict(headers or {}), delivery_mode=2, expiration=expiration,
            mandatory=mandatory, content_type=content_type,
            content_encoding=content_encoding, confirm_timeout=driver.opts.confirm_timeout,
        )
        conn.ensure_connection(errback=driver.on_connection_error, **policy)
        conn.ensure(job, job.run, errback=driver.on_connection_error, **policy)()
    except connection_errors(conn) as exc:
        conn.collect()  # a channel closed by the broker must not go back to the pool
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        raise driver.failure(
            f"Could not publish to exchange {name!r} with routing key {routing_key!r}", exc,
        ) from None
    finally:
        conn.release()
    if job.returned:
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        raise MessageUndeliverable(job.returned[0], name, routing_key, body)

