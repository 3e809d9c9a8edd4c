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
    Exactly one: the reply receiver, started with the first call, which hands
    replies to :meth:`Driver.deliver_reply`. Sends go through one locked
    connection shared by every thread. :meth:`Amqp1Driver.cleanup` stops and
    joins the reply thread and closes every connection.

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

import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from proton import Delivery, Timeout
from proton.utils import BlockingConnection

from ... import _wire
from ..._errors import InvalidTransportURL
from .._backoff import Backoff
from .._options import as_bool
from .._tls import TLSRefused
from ..base import Driver, Listener, PendingReply
from ._address import AddressPlan, Binding, QueueSpec, plan_named
from ._connection import (
    HostRing,
    Inbox,
    SendChannel,
    Topology,
    check_open,
    close_quietly,
    connect,
    describe,
    logger,
)
from ._listener import Amqp1Listener, content_encoding
from ._security import Security

if TYPE_CHECKING:
    from ..._target import Target
    from ..._url import TransportURL

__all__ = ["RABBITMQ_MIN_HEARTBEAT", "Amqp1Driver"]

#: The shortest ``heartbeat`` (seconds) RabbitMQ's AMQP 1.0 plugin can keep.
RABBITMQ_MIN_HEARTBEAT = 2.0


class _ReplyReceiver(threading.Thread):
    """The driver's one thread: receives replies on the reply queue, reconnecting
    with backoff, until :meth:`close`."""

    def __init__(self, driver: Amqp1Driver) -> None:
        super().__init__(name=f"dovecote-amqp1-replies-{driver.reply_q[-8:]}", daemon=True)
        self.driver = driver
        self.ready = threading.Event()
        #: Why the broker's certificate was refused, once it was.
        self.refused: TLSRefused | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        driver = self.driver
        source = driver.plan.reply_source(driver.reply_q)
        backoff = driver.new_backoff()
        while not self._stopped.is_set():
            conn: BlockingConnection | None = None
            opened = False
            try:
                driver.declare(queues=[source.queue] if source.queue else [])
                conn = driver.open_connection()
                inbox = Inbox()
                # Keep the BlockingReceiver: its __del__ unhooks the handler.
                receiver = conn.create_receiver(source.address, credit=0, handler=inbox)
                self.refused = None
                self.ready.set()
                backoff.opened()
                opened = True
                self._receive(conn, inbox, receiver.link)
            except TLSRefused as exc:  # no retry mends that: callers are told
                self.refused = exc
                self.ready.set()
                driver.log.error("replies.refused", error=str(exc))
                self._stopped.wait(backoff.maximum)
            except Exception as exc:  # noqa: BLE001 - the driver's only reply thread goes on
                # A lost connection (TRANSIENT_ERRORS), or anything else Proton
                # raises: start over on a fresh connection rather than let every
                # later call on this transport time out.
                driver.forget_declarations()
                delay = backoff.lost() if opened else backoff.failed()
                driver.log.warning("replies.reconnecting", delay_s=delay, error=describe(exc))
                self._stopped.wait(delay)
            finally:
                close_quietly(conn)

    def _receive(self, conn: BlockingConnection, inbox: Inbox, link: Any) -> None:
        while not self._stopped.is_set():
            if link.credit < self.driver.prefetch:
                link.flow(self.driver.prefetch - link.credit)
            with contextlib.suppress(Timeout):  # nothing came in 0.2 s: look again
                conn.wait(lambda: bool(inbox.items) or inbox.failure is not None, timeout=0.2)
            check_open(conn, inbox, (link,))
            items, inbox.items = inbox.items, []
            for _link, raw, delivery in items:
                delivery.update(Delivery.ACCEPTED)
                delivery.settle()
                # never raises, whatever the body
                self.driver.deliver_reply(raw.body, content_encoding=content_encoding(raw),
                                          unreadable=getattr(raw, "unreadable", None))

    def close(self) -> None:
        """Stop and wait for the thread (at most one receive interval)."""
        self._stopped.set()
        if self.is_alive():
            self.join()


class Amqp1Driver(Driver):
    """AMQP 1.0 over python-qpid-proton; see the module docstring."""

    confirms = True

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.log = logger(url, driver="amqp1")
        try:
            self.plan: AddressPlan = plan_named(
                str(self.options.get("addressing", "rabbitmq")),
                queue_expires=self._float("queue_expires", 1800.0),
                pool_expires=self._float("notification_pool_ttl", 0.0),
                durable=as_bool(url, "amqp_durable_queues",
                                self.options.get("amqp_durable_queues", False)),
            )
            self.prefetch = max(1, int(self._float("prefetch", 10)))
            self.connect_timeout = self._float("connect_timeout", 5.0)
            self.send_timeout = self._float("send_timeout", 10.0)
            heartbeat = self._float("heartbeat", 10.0)
            self.reconnect_delay = self._float("reconnect_delay", 0.2)
            self.reconnect_max_delay = self._float("reconnect_max_delay", 5.0)
        except ValueError as exc:
            raise InvalidTransportURL(str(url), str(exc)) from None
        if self.plan.declares and 0 < heartbeat < RABBITMQ_MIN_HEARTBEAT:
            # Proton advertises half the heartbeat as its idle timeout, and
            # RabbitMQ's plugin counts whole seconds: below 1 s it sends no
            # heartbeats at all, and every idle connection would expire.
            self.log.warning("transport.option_adjusted", option="heartbeat", given=heartbeat,
                             used=RABBITMQ_MIN_HEARTBEAT,
                             reason="RabbitMQ's AMQP 1.0 plugin heartbeats whole seconds")
            heartbeat = RABBITMQ_MIN_HEARTBEAT
        self.heartbeat = heartbeat or None
        self.security = Security.parse(url, self.options, declares=self.plan.declares)
        vhost = url.virtual_host or ""
        self._virtual_host = f"vhost:{vhost or '/'}" if self.plan.declares else vhost or None
        self._ring = HostRing(url, default_port=self.security.default_port)
        self._topology = (
            Topology(self._ring, virtual_host=vhost or "/", timeout=self.connect_timeout,
                     security=self.security, durable=self.plan.durable)
            if self.plan.declares else None
        )
        self.sender = SendChannel(
            self.open_connection, send_timeout=self.send_timeout,
            backoff=self.new_backoff,
            on_failure=self.forget_declarations, log=self.log,
            max_idle=self.heartbeat / 2 if self.heartbeat else None,
        )
        self.reply_q = f"reply_{_wire.new_id()}"
        self._replies: _ReplyReceiver | None = None
        self._replies_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Amqp1Driver {self.url} addressing={self.plan.name}>"

    def _float(self, name: str, default: float) -> float:
        value = self.options.get(name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"option {name}={value!r} is not a number") from None

    # -- plumbing shared with listeners -----------------------------------------
    def new_backoff(self) -> Backoff:
        """Reconnection waits for one connection: ``reconnect_delay``, doubled
        up to ``reconnect_max_delay`` (see :mod:`.._backoff`)."""
        return Backoff(initial=self.reconnect_delay, maximum=self.reconnect_max_delay,
                       factor=2.0)

    def open_connection(self) -> BlockingConnection:
        """A new Proton connection to the first URL host that answers."""
        return connect(self._ring, timeout=self.connect_timeout, heartbeat=self.heartbeat,
                       virtual_host=self._virtual_host, security=self.security)

    def declare(
        self, *, queues: Iterable[QueueSpec] = (), exchanges: Iterable[Binding] = ()
    ) -> None:
        """Make sure queues, exchanges and bindings exist (``rabbitmq`` plan only)."""
        if self._topology is not None:
            self._topology.ensure(queues=queues, exchanges=exchanges)

    def forget_declarations(self) -> None:
        """After a connection failure: the broker may have lost what was declared."""
        if self._topology is not None:
            self._topology.forget()

    def delete_queue(self, name: str) -> None:
        """Delete a queue this driver made for itself (fanout, reply)."""
        if self._topology is not None:
            self._topology.delete_queue(name)

    def _ensure_replies(self) -> None:
        with self._replies_lock:
            self.ensure_open("call")
            if self._replies is None:
                self._replies = _ReplyReceiver(self)
                self._replies.start()
            replies = self._replies
        # The reply queue must exist before a server can answer into it.
        if not replies.ready.wait(self.connect_timeout):
            self.log.warning("replies.not_ready", waited_s=self.connect_timeout)
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
            destination = self.plan.fanout(topic)
            exchanges = self.plan.sender_exchanges(exchange, fanout_topic=topic)
        else:
            destination = self.plan.topic(exchange, topic, target.server)
            exchanges = self.plan.sender_exchanges(exchange)
        self.sender.publish(
            destination, _wire.encode_envelope(packed), retry=retry,
            ttl=timeout if reply is not None and timeout else None,
            prepare=lambda: self.declare(exchanges=exchanges),
        )

    def send_notification(
        self, target: Target, ctxt: Mapping[str, Any], message: Mapping[str, Any], *,
        version: float, retry: int | None = None,
    ) -> None:
        packed = _wire.pack_notification(ctxt, message)
        body = _wire.encode_envelope(packed) if version >= 2.0 else _wire.dumps(packed)
        exchange = target.exchange or self.control_exchange
        exchanges = self.plan.sender_exchanges(exchange)
        # Like oslo.messaging, declare <topic>.<priority> (rabbitmq plan) so a
        # notification sent before any listener waits there instead of vanishing.
        queue = self.plan.notification_source([(exchange, str(target.topic))], None)[0].queue
        queues = [queue] if queue is not None else []
        self.sender.publish(
            self.plan.notification(exchange, str(target.topic)), body, retry=retry,
            prepare=lambda: self.declare(queues=queues, exchanges=exchanges),
        )

    def listen(self, target: Target) -> Listener:
        topic = str(target.topic)
        exchange = target.exchange or self.control_exchange
        sources = [self.plan.topic_source(exchange, topic, None)]
        if target.server:
            sources.append(self.plan.topic_source(exchange, topic, target.server))
        fanout = self.plan.fanout_source(topic, _wire.new_id())
        sources.append(fanout)
        own = [fanout.queue.name] if fanout.queue is not None else []
        return Amqp1Listener(self, sources, notifications=False, own_queues=own)

    def listen_for_notifications(
        self, targets_and_priorities: Sequence[tuple[Target, str]], pool: str | None,
    ) -> Listener:
        if pool and not self.plan.supports_pools:
            msg = (f"addressing={self.plan.name} cannot express notification pools "
                   f"(pool={pool!r}); use addressing=rabbitmq or no pool")
            raise NotImplementedError(msg)
        keys = [
            (target.exchange or self.control_exchange, f"{target.topic}.{priority}")
            for target, priority in targets_and_priorities
        ]
        sources = self.plan.notification_source(keys, pool)
        return Amqp1Listener(self, sources, notifications=True, own_queues=[])

    def listen_dead_letters(self, queue: str) -> Listener:
        return Amqp1Listener(self, [self.plan.dead_letter_source(queue)], notifications=True,
                             own_queues=[])

    def cleanup(self) -> None:
        """Stop the reply thread, delete the reply queue, close every connection."""
        with self._replies_lock:
            self.closed = True
            replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()
            self.delete_queue(self.reply_q)
        self.sender.close()
        if self._topology is not None:
            self._topology.forget()
        self._pending.clear()

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """A passive declare over the ``rabbitmq`` plan's AMQP 0-9-1 connection
        (under its lock); the other plans declare nothing and cannot tell."""
        import amqp

        from ..._errors import MessageDeliveryFailure
        from ._connection import TRANSIENT_ERRORS

        topology = self._topology
        if topology is None:
            return None
        self.ensure_open("inspect a queue")
        with topology._lock:  # the plan's one declaring connection, as it declares
            try:
                channel = topology._channel()
                try:
                    _, messages, _ = channel.queue_declare(name, passive=True)
                except amqp.exceptions.NotFound:
                    return False, 0
                finally:
                    with contextlib.suppress(*TRANSIENT_ERRORS):
                        channel.close()
            except TRANSIENT_ERRORS as exc:
                topology.forget_locked()
                msg = f"Could not inspect queue {name!r} on {self.url}: {describe(exc)}"
                raise MessageDeliveryFailure(msg) from None
        return True, messages
