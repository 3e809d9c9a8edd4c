"""The oslo.config options dovecote.oslo registers, so a service's existing
configuration files load unchanged: oslo.messaging 18's ``[DEFAULT]``,
``[oslo_messaging_notifications]``, ``[oslo_messaging_rabbit]`` and
``[oslo_messaging_kafka]`` options with its names, types, defaults and
deprecated names, plus the old ``[oslo_messaging_amqp]`` options that map onto
dovecote's AMQP 1.0 driver. Help texts are dovecote's and say what dovecote
does. Every option is read by the face (``READ_BY_FACE``), becomes a driver
option (``RABBIT_TO_DRIVER``, ``AMQP_TO_DRIVER``) or is registered only so
configuration files load (``UNIMPLEMENTED``, with the reason).

The rabbit, Kafka and AMQP groups are defined in ``_optdefs_rabbit``,
``_optdefs_kafka`` and ``_optdefs_amqp``; this module is where to import them.
"""

from __future__ import annotations

from oslo_config import cfg

from ._optdefs_amqp import AMQP_GROUP, AMQP_OPTS, AMQP_TO_DRIVER
from ._optdefs_kafka import KAFKA_GROUP, KAFKA_OPTS, KAFKA_UNIMPLEMENTED
from ._optdefs_rabbit import RABBIT_GROUP, RABBIT_OPTS, RABBIT_TO_DRIVER, RABBIT_UNIMPLEMENTED

__all__ = [
    "ALL_GROUPS",
    "AMQP_GROUP",
    "AMQP_OPTS",
    "AMQP_TO_DRIVER",
    "DEFAULT_GROUP",
    "DEFAULT_OPTS",
    "KAFKA_GROUP",
    "KAFKA_OPTS",
    "NOTIFICATIONS_GROUP",
    "NOTIFICATION_OPTS",
    "RABBIT_GROUP",
    "RABBIT_OPTS",
    "RABBIT_TO_DRIVER",
    "READ_BY_FACE",
    "UNIMPLEMENTED",
]

#: The key of the ``[DEFAULT]`` group in ``READ_BY_FACE`` and ``UNIMPLEMENTED``
#: (``None`` in ``ALL_GROUPS``, as oslo.config names it).
DEFAULT_GROUP = "DEFAULT"
NOTIFICATIONS_GROUP = "oslo_messaging_notifications"

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.IntOpt("executor_thread_pool_size", default=64, deprecated_name="rpc_thread_pool_size",
               help="How many messages one RPC server or notification listener handles at "
                    "the same time (its pool of workers)."),
    cfg.IntOpt("rpc_response_timeout", default=60,
               help="Seconds an RPC call waits for its reply when the caller sets no timeout."),
    cfg.StrOpt("transport_url", default="rabbit://", secret=True,
               help="Where the broker is, as a transport URL: "
                    "driver://user:password@host:port[,host2:port2]/virtual_host?options. "
                    "Secret: it may carry a password."),
    cfg.StrOpt("control_exchange", default="openstack",
               help="Exchange used by every target that names no exchange of its own."),
    cfg.BoolOpt("rpc_ping_enabled", default=False,
                help="oslo.messaging's switch for answering oslo_rpc_server_ping. dovecote "
                     "servers answer that ping through their control endpoint in any case."),
]

NOTIFICATION_OPTS: list[cfg.Opt] = [
    cfg.MultiStrOpt("driver", default=[],
                    help="Where notifications go: messagingv2, messaging, log, routing, test or "
                         "noop; repeat the option for several. None given: nothing is sent."),
    cfg.StrOpt("transport_url", secret=True,
               help="Transport URL for notifications when they use another broker than RPC; "
                    "unset: [DEFAULT] transport_url. Secret: it may carry a password."),
    cfg.ListOpt("topics", default=["notifications"],
                help="Comma-separated topics each notification is published on, as "
                     "<topic>.<priority>."),
    cfg.IntOpt("retry", default=-1,
               help="Retries of a notification the transport could not send: 0 for none, "
                    "-1 to keep trying."),
]

#: Options the face itself reads, per group (none of them reaches a driver as is).
READ_BY_FACE: dict[str, frozenset[str]] = {
    DEFAULT_GROUP: frozenset({"transport_url", "control_exchange", "rpc_response_timeout",
                              "executor_thread_pool_size", "rpc_ping_enabled"}),
    NOTIFICATIONS_GROUP: frozenset({"driver", "transport_url", "topics", "retry"}),
}

#: Options registered only so configuration files load: group -> {option: why}.
UNIMPLEMENTED: dict[str, dict[str, str]] = {
    RABBIT_GROUP: dict(RABBIT_UNIMPLEMENTED),
    KAFKA_GROUP: dict(KAFKA_UNIMPLEMENTED),
}

#: Every group and its options, ``None`` for ``[DEFAULT]``.
ALL_GROUPS: list[tuple[str | None, list[cfg.Opt]]] = [
    (None, DEFAULT_OPTS),
    (AMQP_GROUP, AMQP_OPTS),
    (NOTIFICATIONS_GROUP, NOTIFICATION_OPTS),
    (RABBIT_GROUP, RABBIT_OPTS),
    (KAFKA_GROUP, KAFKA_OPTS),
]
