"""The kombu driver's reply consumer: one ``reply_<id>`` queue and one daemon
thread per driver, draining replies and heartbeats to the waiting callers.

The thread blocks in ``drain_events`` with a short timeout, so ``stop`` ends it
within that timeout; it reconnects (re-declaring the same queue) with back-off
when the connection is lost, waiting on its stop event rather than sleeping.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from ...observe._logging import get_logger
from .._buffered import drain
from ._options import Consumer, connection_errors

if TYPE_CHECKING:
    from ._broker import KombuBroker

__all__ = ["DeliverReply", "ReplyConsumer"]

#: How long one drain blocks: the bound on how long ``stop`` waits for the thread.
_DRAIN_TIMEOUT = 0.2

log = get_logger(__name__)


class DeliverReply(Protocol):
    """Where replies go: the driver's :meth:`~dovecote.drivers.base.Driver.deliver_reply`."""

    def __call__(self, body: object, *, content_encoding: object = None,
                 unreadable: str | None = None) -> None: ...


class ReplyConsumer:
    """Declares the driver's reply queue and hands what arrives there to
    ``deliver`` (the driver's ``deliver_reply``) from a thread named
    ``dovecote-reply-<id>``."""

    def __init__(
        self, broker: KombuBroker, *, deliver: DeliverReply, retry: int | None,
    ) -> None:
        self.broker = broker
        self._deliver = deliver
        self.name = broker.entities.reply_queue_name()
        self._queue = broker.entities.reply_queue(self.name)
        self._conn = broker.new_connection("reply")
        self._errors = connection_errors(self._conn)
        self._stop = threading.Event()
        self._backoff = broker.opts.backoff()
        self._channel: Any = None
        try:
            self._consume(broker.retry_policy(retry))
        except self._errors as exc:
            self._conn.release()
            raise broker.failure(f"Could not declare reply queue {self.name}", exc) from None
        self._thread = threading.Thread(
            target=self._run, name=f"dovecote-reply-{self.name[6:18]}", daemon=True,
        )
        self._thread.start()

    def _consume(self, policy: dict[str, Any]) -> None:
        self._conn.ensure_connection(errback=self.broker.on_connection_error, **policy)
        channel = self._conn.channel()
        self._queue(channel).declare()
        Consumer(
            channel, queues=[self._queue], no_ack=True, auto_declare=False,
            on_message=self._on_message,
        ).consume()
        self._channel = channel
        self._backoff.opened()

    def _on_message(self, raw: Any) -> None:
        try:
            self._deliver(raw.body, content_encoding=raw.content_encoding,
                          unreadable=getattr(raw, "unreadable", None))
        except Exception as exc:  # noqa: BLE001 - one bad reply must not stop the thread
            log.warning("reply.deliver_failed", transport=str(self.broker.url),
                        reply_q=self.name, error=str(exc))

    def _run(self) -> None:
        connected = True
        lost_at = 0.0  # when the connection was lost (time.monotonic())
        while not self._stop.is_set():
            if not connected:
                connected = self._reconnect(lost_at)
                continue
            try:
                with contextlib.suppress(TimeoutError):
                    drain(self._conn, _DRAIN_TIMEOUT)
                self._conn.heartbeat_check()
            except Exception as exc:  # noqa: BLE001 - lost, or a frame py-amqp chokes on:
                # either way the connection's state is unknown; the thread must go on
                self._channel = None
                log.warning(
                    "reply.connection_lost", transport=str(self.broker.url),
                    reply_q=self.name, error=self.broker.scrub(f"{type(exc).__name__}: {exc}"),
                )
                self._collect()
                connected = False
                lost_at = time.monotonic()
                self._stop.wait(self._backoff.lost())

    def _collect(self) -> None:
        self._channel = None
        try:
            self._conn.collect()
        except Exception:  # noqa: BLE001 - the connection is already broken
            log.debug("reply.collect_failed", reply_q=self.name)

    def _reconnect(self, lost_at: float) -> bool:
        opts = self.broker.opts
        log.info("reply.reconnecting", transport=str(self.broker.url), reply_q=self.name)
        try:
            self._consume(opts.retry_policy(0))
        except self._errors as exc:
            wait = self._backoff.failed()
            log.warning(
                "reply.reconnect_failed", transport=str(self.broker.url), reply_q=self.name,
                retry_in=round(wait, 3),
                error=self.broker.scrub(f"{type(exc).__name__}: {exc}"),
            )
            self._collect()
            self._conn.maybe_switch_next()
            self._stop.wait(wait)
            return False
        # A warning, as the loss was: whoever saw that sees its end.
        log.warning("reply.reconnected", transport=str(self.broker.url), reply_q=self.name,
                    down_for=round(time.monotonic() - lost_at, 3))
        return True

    def stop(self) -> None:
        """Stop the thread (within one drain timeout, or one connect attempt),
        delete the reply queue while still connected (not a ``use_queue_manager``
        one: the next run reuses it), and close the connection. A queue left
        behind by a crash expires after ``rabbit_transient_queues_ttl``."""
        self._stop.set()
        opts = self.broker.opts
        self._thread.join(timeout=opts.connect_timeout + 2 * _DRAIN_TIMEOUT + 1)
        if self._channel is not None and not self._thread.is_alive() \
                and not opts.use_queue_manager:
            try:
                self._channel.queue_delete(self.name)
            except self._errors as exc:
                log.debug("reply.delete_failed", reply_q=self.name, error=str(exc))
        try:
            self._conn.release()
        except Exception:  # noqa: BLE001 - closing a broken connection
            log.debug("reply.close_failed", reply_q=self.name)
