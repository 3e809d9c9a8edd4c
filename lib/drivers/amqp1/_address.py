"""Addresses for the ``amqp1://`` driver: where each kind of target lives.

AMQP 1.0 has no exchanges, bindings or queue declarations: a link attaches to
an opaque *address* and the broker decides what it means. Every dovecote
destination is therefore named by an :class:`AddressPlan` that turns a target
into (a) the address a sender attaches to plus the message ``subject``, and
(b) the address a receiver attaches to, plus the queues and bindings that must
exist first. Two plans ship:

``rabbitmq`` (default)
    RabbitMQ 3.x's AMQP 1.0 plugin maps addresses onto AMQP 0-9-1 objects:
    ``/exchange/X`` sends to exchange ``X`` with the message subject as routing
    key, ``/queue`` sends to the default exchange (subject = queue name), and
    ``/amq/queue/Q`` consumes from an existing queue ``Q``. The plugin cannot
    declare a *named* queue bound to an exchange, which shared topic queues and
    notification pools need, so this plan lists the exchanges, queues and
    bindings of oslo.messaging's rabbit layout and the driver declares them over
    AMQP 0-9-1 on the same broker port (py-amqp, already installed with kombu)
    before attaching. Result: the very queues a ``rabbit://`` transport uses, so
    ``amqp1://`` and ``rabbit://`` peers talk to each other.

``plain`` (alias ``qpid``, ``activemq``)
    Plain hierarchical addresses for brokers and routers that create nodes on
    demand (Qpid broker-J / qpidd with auto-create, ActiveMQ Artemis, Qpid
    Dispatch Router with ``multicast`` address prefix configured):
    ``<exchange>/<topic>``, ``<exchange>/<topic>.<server>``,
    ``multicast/<topic>``, ``<reply queue>`` and
    ``<exchange>/<topic>.<priority>``. Nothing is declared; a notification pool
    other than the default cannot be expressed and is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = ["PLANS", "AddressPlan", "Binding", "Destination", "QueueSpec", "Source", "plan_named"]

ExchangeType = Literal["topic", "fanout", "direct"]


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a sender attaches, and the subject that routes the message there."""

    address: str
    subject: str | None = None


@dataclasses.dataclass(frozen=True)
class Binding:
    """An exchange (declared if missing) and a routing key that feeds a queue."""

    exchange: str
    exchange_type: ExchangeType
    routing_key: str


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    """A queue to declare before attaching; ``expires`` (seconds) makes it
    vanish when unused, for per-listener and per-driver queues; a ``durable``
    one outlives a broker restart. ``message_ttl`` (milliseconds) and
    ``max_length`` bound what it keeps (0: unbounded)."""

    name: str
    bindings: tuple[Binding, ...] = ()
    expires: float | None = None
    durable: bool = False
    message_ttl: int = 0
    max_length: int = 0


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a receiver attaches, and what must exist first (``queue``)."""

    address: str
    queue: QueueSpec | None = None


class AddressPlan:
    """The ``rabbitmq`` plan: oslo.messaging's rabbit layout, reached through
    RabbitMQ's AMQP 1.0 address conventions."""

    name = "rabbitmq"
    #: Whether :class:`QueueSpec` declarations must be made before attaching.
    declares = True
    #: Whether a notification pool can be expressed.
    supports_pools = True

    def __init__(self, *, queue_expires: float = 1800.0, durable: bool = False,
                 pool_expires: float = 0.0, notification_ttl: float = 0.0,
                 notification_max_length: int = 0) -> None:
        self.queue_expires = queue_expires
        #: ``notification_pool_ttl``: a pool queue vanishes unused after it (0: never).
        self.pool_expires = pool_expires
        #: ``notification_queue_ttl`` (seconds) and ``notification_queue_max_length``:
        #: what a notification queue keeps (0: everything, until taken).
        self.notification_ttl = notification_ttl
        self.notification_max_length = notification_max_length
        #: ``amqp_durable_queues``: topic, server and notification queues (and
        #: their exchanges) outlive a broker restart, as on ``rabbit://``.
        self.durable = durable

    # -- sending -------------------------------------------------------------
    def topic(self, exchange: str, topic: str, server: str | None) -> Destination:
        """A request to every server of ``topic`` (competing) or to one ``server``."""
        key = f"{topic}.{server}" if server else topic
        return Destination(f"/exchange/{exchange}", key)

    def fanout(self, topic: str) -> Destination:
        """A cast to every listener of ``topic``."""
        return Destination(f"/exchange/{topic}_fanout", "")

    def queue(self, name: str) -> Destination:
        """Straight to queue ``name`` (replies, requeues, dead letters)."""
        return Destination("/queue", name)

    def notification(self, exchange: str, key: str) -> Destination:
        """A notification to ``<topic>.<priority>`` (``key``)."""
        return Destination(f"/exchange/{exchange}", key)

    def sender_exchanges(self, exchange: str, *, fanout_topic: str | None = None) -> list[Binding]:
        """Exchanges a sender needs before attaching (the plugin refuses a missing one)."""
        if fanout_topic is not None:
            return [Binding(f"{fanout_topic}_fanout", "fanout", "")]
        return [Binding(exchange, "topic", "")]

    # -- receiving -----------------------------------------------------------
    def _source(self, spec: QueueSpec) -> Source:
        return Source(f"/amq/queue/{spec.name}", spec)

    def topic_source(self, exchange: str, topic: str, server: str | None) -> Source:
        """The queue shared by every server of ``topic`` (or of ``topic.server``)."""
        key = f"{topic}.{server}" if server else topic
        return self._source(QueueSpec(key, (Binding(exchange, "topic", key),),
                                      durable=self.durable))

    def fanout_source(self, topic: str, unique: str) -> Source:
        """One listener's own copy of the fanout casts to ``topic``."""
        name = f"{topic}_fanout_{unique}"
        binding = Binding(f"{topic}_fanout", "fanout", "")
        return self._source(QueueSpec(name, (binding,), self.queue_expires))

    def reply_source(self, reply_q: str) -> Source:
        """The driver's reply queue."""
        return self._source(QueueSpec(reply_q, (), self.queue_expires))

    def notification_source(
        self, keys: list[tuple[str, str]], pool: str | None
    ) -> list[Source]:
        """Queues for ``(exchange, <topic>.<priority>)`` pairs: one per key, or one
        pool queue bound to every key."""
        bounds = {"message_ttl": round(self.notification_ttl * 1000),
                  "max_length": self.notification_max_length}
        if pool:
            bindings = tuple(Binding(exchange, "topic", key) for exchange, key in keys)
            return [self._source(QueueSpec(pool, bindings, self.pool_expires or None,
                                           durable=self.durable, **bounds))]
        merged: dict[str, list[Binding]] = {}
        for exchange, key in keys:
            merged.setdefault(key, []).append(Binding(exchange, "topic", key))
        return [self._source(QueueSpec(key, tuple(b), durable=self.durable, **bounds))
                for key, b in merged.items()]

    def dead_letter_source(self, name: str) -> Source:
        """A dead-letter queue, to read back what was parked there."""
        return self._source(QueueSpec(name, durable=True))

    def requeue_to(self, source: Source) -> Destination:
        """Where a requeued message is republished: back to its own queue."""
        assert source.queue is not None
        return self.queue(source.queue.name)

    def dead_letter_to(self, source: Source, subject: str | None) -> tuple[Destination, QueueSpec]:
        """Where a message a listener gave up on is parked: ``<routing key>.dead``
        (the routing key is the subject), else ``<queue>.dead``."""
        assert source.queue is not None
        spec = QueueSpec(f"{subject or source.queue.name}.dead", durable=True)
        return self.queue(spec.name), spec


class PlainAddressPlan(AddressPlan):
    """The ``plain`` plan: hierarchical addresses, nothing declared."""

    name = "plain"
    declares = False
    supports_pools = False

    def topic(self, exchange: str, topic: str, server: str | None) -> Destination:
        key = f"{topic}.{server}" if server else topic
        return Destination(f"{exchange}/{key}")

    def fanout(self, topic: str) -> Destination:
        return Destination(f"multicast/{topic}")

    def queue(self, name: str) -> Destination:
        return Destination(name)

    def notification(self, exchange: str, key: str) -> Destination:
        return Destination(f"{exchange}/{key}")

    def sender_exchanges(self, exchange: str, *, fanout_topic: str | None = None) -> list[Binding]:
        del exchange, fanout_topic  # nothing to declare
        return []

    def topic_source(self, exchange: str, topic: str, server: str | None) -> Source:
        return Source(self.topic(exchange, topic, server).address)

    def fanout_source(self, topic: str, unique: str) -> Source:
        del unique  # the broker gives every multicast receiver its own copy
        return Source(self.fanout(topic).address)

    def reply_source(self, reply_q: str) -> Source:
        return Source(reply_q)

    def dead_letter_source(self, name: str) -> Source:
        return Source(name)

    def notification_source(
        self, keys: list[tuple[str, str]], pool: str | None
    ) -> list[Source]:
        del pool  # refused by the driver (supports_pools is false)
        addresses = dict.fromkeys(self.notification(ex, key).address for ex, key in keys)
        return [Source(address) for address in addresses]

    def requeue_to(self, source: Source) -> Destination:
        return Destination(source.address)

    def dead_letter_to(self, source: Source, subject: str | None) -> tuple[Destination, QueueSpec]:
        del subject  # the source address already names topic and priority
        spec = QueueSpec(f"{source.address}.dead")
        return Destination(spec.name), spec


PLANS: dict[str, type[AddressPlan]] = {
    "rabbitmq": AddressPlan,
    "plain": PlainAddressPlan,
    "qpid": PlainAddressPlan,
    "activemq": PlainAddressPlan,
}


def plan_named(name: str, *, queue_expires: float = 1800.0, durable: bool = False,
               pool_expires: float = 0.0, notification_ttl: float = 0.0,
               notification_max_length: int = 0) -> AddressPlan:
    """The plan for the ``addressing`` option; ``ValueError`` names the choices,
    and refuses notification queue bounds a plan that declares nothing cannot set."""
    try:
        cls = PLANS[name.lower()]
    except KeyError:
        msg = f"addressing={name!r} is not one of {', '.join(sorted(PLANS))}"
        raise ValueError(msg) from None
    if not cls.declares and (notification_ttl or notification_max_length):
        msg = (f"notification_queue_ttl and notification_queue_max_length need "
               f"addressing=rabbitmq (which declares the queues); addressing={name} declares "
               "nothing: bound the queues in the broker's own configuration instead")
        raise ValueError(msg)
    return cls(queue_expires=queue_expires, durable=durable, pool_expires=pool_expires,
               notification_ttl=notification_ttl,
               notification_max_length=notification_max_length)
