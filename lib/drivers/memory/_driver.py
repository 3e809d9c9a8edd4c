"""The ``memory://`` driver: listeners and incoming messages on a
:class:`~._broker.MemoryBroker`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ... import _wire
from .._decoding import ERROR_HEADER, REDELIVERIES_HEADER, unpack
from ..base import Driver, IncomingMessage, Listener, PendingReply
from ._broker import MemoryBroker, StoredMessage, get_broker

if TYPE_CHECKING:
    from ..._target import Target
    from ..._url import TransportURL

__all__ = ["MemoryDriver", "MemoryIncomingMessage", "MemoryListener"]


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

    def route(self) -> tuple[str, str, str]:
        stored = self._stored
        return stored.exchange, stored.routing_key, self._queue

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
    option_names = frozenset[str]()  # it reads none

    def __init__(self, url: TransportURL, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        name = url.hosts[0].hostname or "" if url.hosts else ""
        self.broker = get_broker(name)
        self._reply_q = f"reply_{_wire.new_id()}"
        self.broker.set_reply_handler(self._reply_q, self.deliver_reply)

    @property
    def messaging_system(self) -> str:
        return "memory"

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
            self.broker.publish(f"{topic}_fanout", topic, body, fanout=True)
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
