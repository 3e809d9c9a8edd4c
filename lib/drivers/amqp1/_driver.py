"""``amqp1://user:pass@host:port[,host2:port2]/vhost?options`` (alias ``qpid://``):
AMQP 1.0 through python-qpid-proton.

Why blocking connections, one per listener
    The old Qpid client had no selectable file handle, so dovecote polls: one
    polling actor per listener calls :meth:`Listener.poll` every ≤ 0.2 s. This
    driver gives each listener a :class:`proton.utils.BlockingConnection` that
    runs Proton's reactor *inside* ``poll`` in the calling thread, for at most
    ``timeout``. The alternative, a Proton ``Container`` thread per listener
    feeding a queue, costs a thread and a cross-thread wake-up per listener,
    and keeps granting credit while the server is busy. Here credit is
    granted by hand (``prefetch`` per source, topped up only in ``poll``), so
    while a server holds ``max_in_flight`` messages and stops polling, a flood
    stays at the broker. Settlements requested from worker threads are queued
    and applied by the polling thread (Proton is not thread-safe).

Threads
    Exactly one: the reply receiver (see ``_replies``), started with the first
    call, which hands replies to :meth:`Driver.deliver_reply`. Sends go through
    one locked connection shared by every thread (see ``_sending``).
    :meth:`Amqp1Driver.cleanup` stops and joins the reply thread and closes
    every connection.

Structure
    What every part shares about the broker (options, address plan,
    connecting, declaring, the sending connection) is one
    :class:`~._broker.Amqp1Broker` the driver owns; listeners, their messages
    and the reply receiver are given the broker, never the driver.

Addressing (``addressing=`` option)
    ``rabbitmq`` (default): RabbitMQ 3.x's AMQP 1.0 plugin, oslo.messaging's
    rabbit layout (declared over AMQP 0-9-1, which the plugin cannot do);
    ``plain`` (aliases ``qpid``, ``activemq``): hierarchical addresses for
    brokers and routers that create nodes on demand. See ``_address``.

Options (URL query or ``get_transport`` keywords): ``addressing``,
``prefetch`` (credit per source, 10), ``connect_timeout`` (5 s),
``send_timeout`` (10 s), ``heartbeat`` (AMQP idle timeout, 10 s; 0 turns it off),
``reconnect_delay`` (0.2 s, doubled up to ``reconnect_max_delay``, 5 s),
``queue_expires`` (fanout and reply queues vanish unused after it, 1800 s),
``notification_pool_ttl`` (a notification pool queue vanishes unused after it; 0: never),
``sasl_mechanisms`` (``PLAIN`` with a user, else ``ANONYMOUS``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ... import _wire
from ..base import Driver, Listener, PendingReply
from ._broker import OPTION_NAMES, Amqp1Broker
from ._listener import Amqp1Listener
from ._replies import ReplyReceiver

if TYPE_CHECKING:
    from ..._target import Target
    from ..._url import TransportURL

__all__ = ["Amqp1Driver"]


class Amqp1Driver(Driver):
    """AMQP 1.0 over python-qpid-proton; see the module docstring."""

    confirms = True
    option_names = OPTION_NAMES

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.broker = broker = Amqp1Broker(url, self.options)
        # The broker's, at hand for tools and tests.
        self.plan, self.log, self.open_connection = broker.plan, broker.log, broker.open_connection
        self.reply_q = f"reply_{_wire.new_id()}"
        self._replies: ReplyReceiver | None = None
        self._replies_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Amqp1Driver {self.url} addressing={self.plan.name}>"

    @property
    def messaging_system(self) -> str:
        """``rabbitmq`` with the ``rabbitmq`` address plan, else ``amqp1``."""
        return "rabbitmq" if self.plan.name == "rabbitmq" else "amqp1"

    def route(self, target: Target) -> tuple[str, str]:
        """As the base class says, but a fanout goes out with no subject."""
        exchange, key = super().route(target)
        return (exchange, "") if target.fanout else (exchange, key)

    def delete_queue(self, name: str) -> None:
        """Delete a queue this driver made for itself (fanout, reply)."""
        self.broker.delete_queue(name)

    def _ensure_replies(self) -> None:
        """Start the reply receiver (first call) and wait until its queue exists."""
        with self._replies_lock:
            self.ensure_open("call")
            if self._replies is None:
                self._replies = ReplyReceiver(self.broker, self.reply_q,
                                              deliver=self.deliver_reply)
                self._replies.start()
            replies = self._replies
        # The reply queue must exist before a server can answer into it.
        if not replies.ready.wait(self.broker.connect_timeout):
            self.log.warning("replies.not_ready", waited_s=self.broker.connect_timeout)
        if replies.refused is not None:
            raise replies.refused

    # -- the contract --------------------------------------------------------------
    def send(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        reply: PendingReply | None = None, timeout: float | None = None,
        call_monitor_timeout: float | None = None, retry: int | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        del transport_options  # at_least_once: RabbitMQ's AMQP 1.0 plugin confirms
        # unroutable messages, so "no queue took it" cannot be detected here
        if reply is not None:
            self._ensure_replies()
        packed = _wire.pack_request(
            ctxt, message, msg_id=reply.msg_id if reply is not None else None,
            reply_q=self.reply_q if reply is not None else None,
            call_monitor_timeout=call_monitor_timeout,
        )
        topic = str(target.topic)
        exchange = target.exchange or self.control_exchange
        if target.fanout:
            destination = self.broker.plan.fanout(topic)
            exchanges = self.broker.plan.sender_exchanges(exchange, fanout_topic=topic)
        else:
            destination = self.broker.plan.topic(exchange, topic, target.server)
            exchanges = self.broker.plan.sender_exchanges(exchange)
        self.broker.sender.publish(
            destination, _wire.encode_envelope(packed), retry=retry,
            ttl=timeout if reply is not None and timeout else None,
            prepare=lambda: self.broker.declare(exchanges=exchanges),
        )

    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        packed = _wire.pack_notification(ctxt, message)
        body = _wire.encode_envelope(packed) if version >= 2.0 else _wire.dumps(packed)
        exchange = target.exchange or self.control_exchange
        exchanges = self.broker.plan.sender_exchanges(exchange)
        # Like oslo.messaging, declare <topic>.<priority> (rabbitmq plan) so a
        # notification sent before any listener waits there instead of vanishing.
        queue = self.broker.plan.notification_source([(exchange, str(target.topic))], None)[0].queue
        queues = [queue] if queue is not None else []
        self.broker.sender.publish(
            self.broker.plan.notification(exchange, str(target.topic)), body, retry=retry,
            prepare=lambda: self.broker.declare(queues=queues, exchanges=exchanges),
        )

    def listen(self, target: Target) -> Listener:
        topic = str(target.topic)
        exchange = target.exchange or self.control_exchange
        sources = [self.broker.plan.topic_source(exchange, topic, None)]
        if target.server:
            sources.append(self.broker.plan.topic_source(exchange, topic, target.server))
        fanout = self.broker.plan.fanout_source(topic, _wire.new_id())
        sources.append(fanout)
        own = [fanout.queue.name] if fanout.queue is not None else []
        return Amqp1Listener(self.broker, sources, notifications=False, own_queues=own)

    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        if pool and not self.broker.plan.supports_pools:
            msg = (f"addressing={self.broker.plan.name} cannot express notification pools "
                   f"(pool={pool!r}); use addressing=rabbitmq or no pool")
            raise NotImplementedError(msg)
        keys = [
            (target.exchange or self.control_exchange, f"{target.topic}.{priority}")
            for target, priority in targets_and_priorities
        ]
        sources = self.broker.plan.notification_source(keys, pool)
        return Amqp1Listener(self.broker, sources, notifications=True, own_queues=[])

    def listen_dead_letters(self, queue: str) -> Listener:
        return Amqp1Listener(self.broker, [self.broker.plan.dead_letter_source(queue)],
                             notifications=True, own_queues=[])

    def cleanup(self) -> None:
        """Stop the reply thread, delete the reply queue, close every connection."""
        with self._replies_lock:
            self.closed = True
            replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()
            self.broker.delete_queue(self.reply_q)
        self.broker.close()
        self._pending.clear()

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """A passive declare over the ``rabbitmq`` plan's AMQP 0-9-1 connection
        (under its lock); the other plans declare nothing and cannot tell."""
        if not self.plan.declares:
            return None
        self.ensure_open("inspect a queue")
        return self.broker.queue_info(name)
