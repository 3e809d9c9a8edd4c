"""What every part of the ``amqp1://`` driver shares about its broker: the
parsed options, the address plan, how to connect (security, host ring,
back-off), what to declare first (``rabbitmq`` plan) and the one sending
connection.

:class:`~._driver.Amqp1Driver` owns one :class:`Amqp1Broker`; its listeners,
their messages and the reply receiver are given the broker, never the driver,
so no module of the driver imports the driver class back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from proton.utils import BlockingConnection

from ..._errors import InvalidTransportURL, MessageDeliveryFailure
from .._backoff import Backoff
from .._options import as_bool, as_number
from .._tls import TLS_OPTION_NAMES
from ._address import AddressPlan, Binding, QueueSpec, plan_named
from ._connection import TRANSIENT_ERRORS, HostRing, connect, describe, logger
from ._security import Security
from ._sending import SendChannel
from ._topology import Topology

if TYPE_CHECKING:
    from ..._url import TransportURL

__all__ = ["OPTION_NAMES", "RABBITMQ_MIN_HEARTBEAT", "Amqp1Broker"]

#: The shortest ``heartbeat`` (seconds) RabbitMQ's AMQP 1.0 plugin can keep.
RABBITMQ_MIN_HEARTBEAT = 2.0


#: Every option the driver reads (listed in :mod:`._driver`'s docstring and the
#: docs' options table).
OPTION_NAMES = TLS_OPTION_NAMES | {
    "addressing", "queue_expires", "notification_pool_ttl", "notification_queue_ttl",
    "notification_queue_max_length", "amqp_durable_queues", "prefetch", "connect_timeout",
    "send_timeout", "heartbeat", "reconnect_delay", "reconnect_max_delay", "sasl_mechanisms",
    "sasl_allow_insecure"}


def _float(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name}={value!r} is not a number") from None


def _notification_ttl(url: TransportURL, options: Mapping[str, Any]) -> float:
    """``notification_queue_ttl``: seconds, at least the broker's 1 ms (or 0: none)."""
    ttl: float = as_number(url, "notification_queue_ttl",
                           options.get("notification_queue_ttl", 0.0), float)
    if 0 < ttl < 0.001:
        msg = (f"option notification_queue_ttl={ttl!r} is below the broker's 1 ms resolution: "
               "give seconds (0.5 is 500 ms), or 0 for no expiry")
        raise ValueError(msg)
    return ttl


class Amqp1Broker:
    """The driver's side of its broker (options listed in :mod:`._driver`);
    raises :class:`InvalidTransportURL` for an option it cannot read."""

    def __init__(self, url: TransportURL, options: Mapping[str, Any]) -> None:
        self.url = url
        self.log = logger(url, driver="amqp1")
        try:
            self.plan: AddressPlan = plan_named(
                str(options.get("addressing", "rabbitmq")),
                queue_expires=_float(options, "queue_expires", 1800.0),
                pool_expires=_float(options, "notification_pool_ttl", 0.0),
                notification_ttl=_notification_ttl(url, options),
                notification_max_length=as_number(
                    url, "notification_queue_max_length",
                    options.get("notification_queue_max_length", 0), int),
                durable=as_bool(url, "amqp_durable_queues",
                                options.get("amqp_durable_queues", False)),
            )
            self.prefetch = max(1, int(_float(options, "prefetch", 10)))
            self.connect_timeout = _float(options, "connect_timeout", 5.0)
            self.send_timeout = _float(options, "send_timeout", 10.0)
            heartbeat = _float(options, "heartbeat", 10.0)
            self.reconnect_delay = _float(options, "reconnect_delay", 0.2)
            self.reconnect_max_delay = _float(options, "reconnect_max_delay", 5.0)
        except InvalidTransportURL:
            raise  # already says which option, and how to fix it
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
        self.security = Security.parse(url, options, declares=self.plan.declares)
        vhost = url.virtual_host or ""
        self._virtual_host = f"vhost:{vhost or '/'}" if self.plan.declares else vhost or None
        self._ring = HostRing(url, default_port=self.security.default_port)
        self._topology = (
            Topology(self._ring, virtual_host=vhost or "/", timeout=self.connect_timeout,
                     security=self.security, durable=self.plan.durable, log=self.log)
            if self.plan.declares else None
        )
        #: The one connection every thread of the driver sends on.
        self.sender = SendChannel(
            self.open_connection, send_timeout=self.send_timeout,
            backoff=self.new_backoff,
            on_failure=self.forget_declarations, log=self.log,
            max_idle=self.heartbeat / 2 if self.heartbeat else None,
        )

    def __repr__(self) -> str:
        return f"<Amqp1Broker {self.url} addressing={self.plan.name}>"

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
        """Delete a queue the driver made for itself (fanout, reply)."""
        if self._topology is not None:
            self._topology.delete_queue(name)

    def queue_info(self, name: str) -> tuple[bool, int] | None:
        """A passive declare over the ``rabbitmq`` plan's AMQP 0-9-1 connection
        (under its lock); the other plans declare nothing and cannot tell."""
        if self._topology is None:
            return None
        try:
            return self._topology.queue_info(name)
        except TRANSIENT_ERRORS as exc:
            msg = f"Could not inspect queue {name!r} on {self.url}: {describe(exc)}"
            raise MessageDeliveryFailure(msg) from None

    def close(self) -> None:
        """Close the sending connection (later sends fail at once) and the
        declaring one."""
        self.sender.close()
        if self._topology is not None:
            self._topology.forget()
