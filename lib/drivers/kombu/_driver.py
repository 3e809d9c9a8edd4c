"""``rabbit://`` and ``kombu+SCHEME://``: RabbitMQ (and any kombu transport),
wire-compatible with oslo.messaging's rabbit driver.

* What every part of the driver shares about its broker (options, entities,
  connections, publishing with confirms, replies sent) is one
  :class:`~._broker.KombuBroker` the driver owns (see :mod:`._broker`); its
  listeners, reply consumer and incoming messages are given that broker,
  never the driver. ``at_least_once`` publishes mandatory: an unroutable
  call raises :class:`MessageUndeliverable` instead of waiting for its timeout.
* Each listener owns a connection, channel and consumer, drained by ``poll``
  (see :mod:`._listener`); the broker holds what exceeds the prefetch.
* Replies reach callers through one reply queue and one thread per driver,
  created on the first call (see :mod:`._reply`).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import amqp

from ... import _wire
from ..._errors import InvalidTarget
from ...observe._logging import get_logger
from ..base import Driver, Listener, PendingReply
from ._broker import KombuBroker
from ._listener import KombuListener
from ._options import OPTION_NAMES, connection_errors
from ._reply import ReplyConsumer

if TYPE_CHECKING:
    from ..._target import Target
    from ..._url import TransportURL

__all__ = ["KombuDriver"]

log = get_logger(__name__)


def _wants_at_least_once(transport_options: Any) -> bool:
    if transport_options is None:
        return False
    if isinstance(transport_options, Mapping):
        return bool(transport_options.get("at_least_once"))
    return bool(getattr(transport_options, "at_least_once", False))


class KombuDriver(Driver):
    """The RabbitMQ driver (and any kombu transport through ``kombu+SCHEME://``).

    Options (URL query or ``get_transport`` keyword arguments) are listed in
    :class:`~._options.KombuOptions` and the docs' options table (docs/reference/options.md).
    """

    confirms = True
    option_names = OPTION_NAMES

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.broker = broker = KombuBroker(url, self.options, ensure_open=self.ensure_open)
        # The broker's, at hand for tools and tests that publish raw.
        self.opts, self.entities, self.is_amqp = broker.opts, broker.entities, broker.is_amqp
        self.publish, self.send_reply = broker.publish, broker.send_reply
        self._lock = threading.Lock()
        self._reply: ReplyConsumer | None = None
        self._listeners: weakref.WeakSet[KombuListener] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<KombuDriver {self.url}>"

    @property
    def messaging_system(self) -> str:
        """``rabbitmq`` over AMQP 0-9-1, else kombu's transport (``redis``)."""
        return "rabbitmq" if self.is_amqp else self.url.scheme.removeprefix("kombu+")

    def _exchange(self, target: Target) -> str:
        return target.exchange or self.control_exchange

    # -- sending -------------------------------------------------------------------
    def _reply_queue(self, retry: int | None) -> str:
        """The reply queue's name; the reply consumer starts with the first call."""
        with self._lock:
            self.ensure_open("call")
            if self._reply is None:
                self._reply = ReplyConsumer(self.broker, deliver=self.deliver_reply, retry=retry)
            return self._reply.name

    def send(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        reply: PendingReply | None = None, timeout: float | None = None,
        call_monitor_timeout: float | None = None, retry: int | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not target.topic:
            raise InvalidTarget("A topic is required to send a message", target)
        topic = target.topic
        reply_q = self._reply_queue(retry) if reply is not None else None
        packed = _wire.pack_request(
            ctxt, message, msg_id=reply.msg_id if reply is not None else None,
            reply_q=reply_q, call_monitor_timeout=call_monitor_timeout,
        )
        body = _wire.encode_envelope(packed)
        if target.fanout:
            exchange = self.entities.fanout_exchange(topic)
            self.broker.publish(exchange, topic, body, declare=[exchange], retry=retry)
            return
        exchange = self.entities.topic_exchange(self._exchange(target))
        self.broker.publish(
            exchange, f"{topic}.{target.server}" if target.server else topic, body,
            declare=[exchange], retry=retry,
            expiration=timeout if reply is not None and timeout else None,
            mandatory=_wants_at_least_once(transport_options) or self.opts.at_least_once,
        )

    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        """Publish a notification; like oslo.messaging, also declare the queue
        ``<topic>.<priority>`` so notifications wait there until a listener comes."""
        if not target.topic:
            raise InvalidTarget("A topic is required to send a notification", target)
        packed = _wire.pack_notification(ctxt, message)
        body = _wire.encode_envelope(packed) if version >= 2.0 else _wire.dumps(packed)
        name = self._exchange(target)
        exchange = self.entities.topic_exchange(name)
        queue = self.entities.notification_queue(target.topic, [(name, target.topic)])
        self.broker.publish(exchange, target.topic, body, declare=[exchange, queue], retry=retry)

    # -- listening ---------------------------------------------------------------
    def _listener(self, queues: Sequence[Any], *, notifications: bool,
                  name: str) -> KombuListener:
        """A listener this driver closes at ``cleanup`` (unless it was closed first)."""
        listener = KombuListener(self.broker, queues, notifications=notifications, name=name,
                                 forget=self._forget_listener)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def _forget_listener(self, listener: KombuListener) -> None:
        """A listener was cleaned up: ``cleanup`` need not close it."""
        with self._lock:
            self._listeners.discard(listener)

    def listen(self, target: Target) -> Listener:
        if not target.topic:
            raise InvalidTarget("A topic is required to listen", target)
        topic = target.topic
        exchange = self._exchange(target)
        queues = [self.entities.topic_queue(topic, [(exchange, topic)])]
        if target.server:
            server_queue = f"{topic}.{target.server}"
            queues.append(self.entities.topic_queue(server_queue, [(exchange, server_queue)]))
        queues.append(self.entities.fanout_queue(topic))
        return self._listener(queues, notifications=False, name=str(target))

    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        bindings: dict[str, list[tuple[str, str]]] = {}
        for target, priority in targets_and_priorities:
            if not target.topic:
                raise InvalidTarget("A topic is required to listen for notifications", target)
            key = f"{target.topic}.{priority}"
            pair = (self._exchange(target), key)
            found = bindings.setdefault(pool or key, [])
            if pair not in found:
                found.append(pair)
        queues = [self.entities.notification_queue(name, pairs)
                  for name, pairs in bindings.items()]
        name = f"notifications {sorted(bindings)}"
        return self._listener(queues, notifications=True, name=name)

    def listen_dead_letters(self, queue: str) -> Listener:
        return self._listener([self.entities.dead_letter_queue(queue)], notifications=True,
                              name=f"dead letters {queue}")

    def delete_queue(self, name: str) -> None:
        """Delete the queue ``name`` (errors are logged: it may be gone already)."""
        conn = self.broker.pool.acquire(block=True)
        try:
            channel = conn.default_channel
            channel.queue_delete(name)
        except connection_errors(conn) as exc:
            conn.collect()
            log.warning("queue.delete_failed", queue=name, error=self.broker.scrub(str(exc)))
        finally:
            conn.release()

    def cleanup(self) -> None:
        """Stop the reply thread, close every listener this driver made and every
        pooled connection. The driver cannot send after this."""
        with self._lock:
            self.closed = True
            reply, self._reply = self._reply, None
            listeners = list(self._listeners)
        self.broker.close()
        if reply is not None:
            reply.stop()
        for listener in listeners:
            listener.cleanup()
        self.broker.close_pool()
        self._pending.clear()

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """A passive ``queue.declare`` on a pooled connection. AMQP only: kombu's
        Redis keeps no empty queue, so it cannot tell "empty" from "none"."""
        if not self.is_amqp:
            return None
        self.ensure_open("inspect a queue")
        conn = self.broker.pool.acquire(block=True)
        try:
            channel = conn.channel()
            try:
                _, messages, _ = channel.queue_declare(queue=name, passive=True)
            except amqp.exceptions.NotFound:
                return False, 0
            finally:
                with contextlib.suppress(*connection_errors(conn)):
                    channel.close()
        except connection_errors(conn) as exc:
            conn.collect()
            raise self.broker.failure(f"Could not inspect queue {name!r}", exc) from None
        finally:
            conn.release()
        return True, messages
