"""``[oslo_messaging_rabbit]``: the 37 options oslo.messaging 18 registers for
its rabbit driver, with its names, types and defaults, and which of them
dovecote's kombu driver acts on (``RABBIT_TO_DRIVER``) or not
(``RABBIT_UNIMPLEMENTED``). Part of :mod:`._optdefs`."""

from __future__ import annotations

import os
import socket
import sys

from oslo_config import cfg

from ._optdefs_common import not_implemented

__all__ = ["RABBIT_GROUP", "RABBIT_OPTS", "RABBIT_TO_DRIVER", "RABBIT_UNIMPLEMENTED"]

RABBIT_GROUP = "oslo_messaging_rabbit"

#: Why dovecote does not act on an option (its help says so too).
RABBIT_UNIMPLEMENTED: dict[str, str] = {
    "conn_pool_min_size": "dovecote's connection pool never expires idle connections, so it "
                          "has no floor to keep",
    "conn_pool_ttl": "dovecote's connection pool keeps idle connections open until the "
                     "transport is cleaned up",
    "ssl_enforce_hostname_verification": "with ssl on, dovecote always checks the broker's "
                                         "host name; only ssl_verify=false in the transport "
                                         "URL turns checking off, of the certificate chain too",
    "ssl_enforce_fips_mode": "OpenSSL 3 has no run-time FIPS switch (oslo.messaging ignores "
                             "it as well); FIPS mode comes from how OpenSSL is built",
    "kombu_reconnect_delay": "dovecote adds no fixed pause before reconnecting; its waits come "
                             "from rabbit_retry_interval, rabbit_retry_backoff and "
                             "rabbit_interval_max",
    "kombu_compression": "dovecote sends message bodies uncompressed",
    "kombu_missing_consumer_retry_timeout": "a reply whose caller's queue is gone is logged "
                                            "and dropped at once, not retried",
    "heartbeat_rate": "dovecote checks heartbeats at kombu's default rate",
    "direct_mandatory_flag": "dovecote always publishes replies mandatory, which oslo.messaging "
                             "no longer lets one turn off either",
    "enable_cancel_on_failover": "dovecote does not ask for x-cancel-on-ha-failover on its "
                                 "consumers",
}
_why = RABBIT_UNIMPLEMENTED

RABBIT_OPTS: list[cfg.Opt] = [
    cfg.BoolOpt("amqp_durable_queues", default=False,
                help="Declare topic exchanges and RPC queues durable, so they outlive a broker "
                     "restart (quorum queues are durable whatever this says)."),
    cfg.BoolOpt("amqp_auto_delete", default=False,
                help="Declare exchanges and queues auto-delete: the broker removes a queue "
                     "once its last consumer is gone."),
    cfg.IntOpt("rpc_conn_pool_size", default=30, min=1,
               help="Most connections the transport's kombu pool holds. On rabbit:// dovecote "
                    "publishes through one shared confirming connection; the pool serves "
                    "other kombu transports and housekeeping."),
    cfg.IntOpt("conn_pool_min_size", default=2,
               help=not_implemented(_why["conn_pool_min_size"])),
    cfg.IntOpt("conn_pool_ttl", default=1200, help=not_implemented(_why["conn_pool_ttl"])),
    cfg.BoolOpt("ssl", default=False,
                help="Talk to RabbitMQ over TLS. The broker's certificate chain and host name "
                     "are then always checked (against ssl_ca_file, else the system's trust "
                     "store)."),
    cfg.StrOpt("ssl_version", default="",
               help="Oldest TLS version dovecote accepts: TLSv1_2 (also when empty) or "
                    "TLSv1_3; anything older is refused as insecure."),
    cfg.StrOpt("ssl_key_file", default="",
               help="PEM private key of ssl_cert_file, when that file does not hold it."),
    cfg.StrOpt("ssl_cert_file", default="",
               help="PEM client certificate shown to RabbitMQ (needed for the EXTERNAL login)."),
    cfg.StrOpt("ssl_ca_file", default="",
               help="PEM CA certificates the broker's certificate must chain to; empty: the "
                    "system's trust store."),
    cfg.BoolOpt("ssl_enforce_hostname_verification", default=True,
                deprecated_for_removal=True,
                deprecated_reason="The broker's host name is checked in every case.",
                help=not_implemented(_why["ssl_enforce_hostname_verification"])),
    cfg.BoolOpt("ssl_enforce_fips_mode", default=False, deprecated_for_removal=True,
                deprecated_reason="OpenSSL 3 dropped the call that switched FIPS mode on, "
                                  "so the option does nothing.",
                help=not_implemented(_why["ssl_enforce_fips_mode"])),
    cfg.FloatOpt("kombu_reconnect_delay", default=1.0, min=0.0, max=4.5,
                 help=not_implemented(_why["kombu_reconnect_delay"])),
    cfg.FloatOpt("kombu_reconnect_splay", default=0.0, min=0.0,
                 help="Up to this many extra seconds, picked at random, added to every "
                      "reconnection wait so clients that lost a node do not return in step."),
    cfg.StrOpt("kombu_compression", help=not_implemented(_why["kombu_compression"])),
    cfg.IntOpt("kombu_missing_consumer_retry_timeout", default=60,
               deprecated_name="kombu_reconnect_timeout",
               help=not_implemented(_why["kombu_missing_consumer_retry_timeout"])),
    cfg.StrOpt("kombu_failover_strategy", default="round-robin",
               choices=("round-robin", "shuffle"),
               help="Which host of a several-host transport URL comes next after losing one: "
                    "round-robin goes down the list, shuffle picks at random."),
    cfg.StrOpt("rabbit_login_method", default="AMQPLAIN",
               choices=("PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"),
               help="SASL mechanism for logging in to RabbitMQ. dovecote takes AMQPLAIN, PLAIN "
                    "and EXTERNAL (a client certificate) and refuses RABBIT-CR-DEMO."),
    cfg.IntOpt("rabbit_retry_interval", default=1, min=1,
               help="Seconds to wait after a first failed attempt to reach RabbitMQ "
                    "before trying again."),
    cfg.IntOpt("rabbit_retry_backoff", default=2, min=0,
               help="Seconds the reconnection wait grows by after each further failed attempt."),
    cfg.IntOpt("rabbit_interval_max", default=30, min=1,
               help="Upper bound, in seconds, of the wait between reconnection attempts."),
    cfg.BoolOpt("rabbit_ha_queues", default=False,
                help="Declare queues with x-ha-policy=all (classic mirroring, which only "
                     "RabbitMQ before 3.0 honours); excludes the quorum queue options."),
    cfg.BoolOpt("rabbit_quorum_queue", default=False,
                help="Make RPC and notification queues quorum queues (x-queue-type=quorum: "
                     "replicated, always durable; RabbitMQ 3.8 and later). Excludes "
                     "rabbit_ha_queues."),
    cfg.BoolOpt("rabbit_transient_quorum_queue", default=False,
                help="Make reply and fanout queues quorum queues too."),
    cfg.IntOpt("rabbit_quorum_delivery_limit", default=0,
               help="x-delivery-limit of quorum queues: after that many deliveries a message "
                    "is dropped or dead-lettered; 0 sets none."),
    cfg.IntOpt("rabbit_quorum_max_memory_length", default=0,
               help="x-max-in-memory-length of quorum queues (messages held in RAM); 0 sets "
                    "none."),
    cfg.IntOpt("rabbit_quorum_max_memory_bytes", default=0,
               help="x-max-in-memory-bytes of quorum queues (bytes held in RAM); 0 sets none."),
    cfg.IntOpt("rabbit_transient_queues_ttl", default=1800, min=0,
               help="Seconds a reply or fanout queue may stay unused before RabbitMQ deletes "
                    "it (x-expires; 0: never). For a rabbit_stream_fanout stream it is the "
                    "age at which messages are discarded (x-max-age) instead."),
    cfg.IntOpt("rabbit_qos_prefetch_count", default=0,
               help="How many unacknowledged messages RabbitMQ hands a listener's consumer at "
                    "once (basic.qos). Left at 0, dovecote keeps its own bound of 100 rather "
                    "than none."),
    cfg.IntOpt("heartbeat_timeout_threshold", default=60,
               help="Seconds of silence after which the connection to RabbitMQ is taken for "
                    "dead (AMQP heartbeats); 0 turns heartbeats off."),
    cfg.IntOpt("heartbeat_rate", default=3, help=not_implemented(_why["heartbeat_rate"])),
    cfg.BoolOpt("direct_mandatory_flag", default=True, deprecated_for_removal=True,
                deprecated_reason="Replies are published mandatory in every case.",
                help=not_implemented(_why["direct_mandatory_flag"])),
    cfg.BoolOpt("enable_cancel_on_failover", default=False,
                help=not_implemented(_why["enable_cancel_on_failover"])),
    cfg.BoolOpt("use_queue_manager", default=False,
                help="Name reply and fanout queues after hostname and processname, so a "
                     "restarted service finds the same names, instead of random ones."),
    cfg.StrOpt("hostname", default=socket.gethostname(), sample_default="node1.example.com",
               help="Host part of the queue names use_queue_manager builds; this machine's "
                    "name unless set."),
    cfg.StrOpt("processname", default=os.path.basename(sys.argv[0]),  # noqa: PTH119 - as oslo
               sample_default="nova-api",
               help="Process part of the queue names use_queue_manager builds; the running "
                    "program's file name unless set."),
    cfg.BoolOpt("rabbit_stream_fanout", default=False,
                help="Fan out through a single stream queue per topic (x-queue-type=stream, "
                     "RabbitMQ 3.9 and later), each listener reading from its own offset. "
                     "Needs rabbit_transient_quorum_queue and rabbit_qos_prefetch_count above "
                     "0."),
]

#: Each option dovecote's kombu driver acts on -> the driver option it becomes
#: (``KombuOptions`` field, or TLS option name of ``dovecote.drivers._tls``).
RABBIT_TO_DRIVER: dict[str, str] = {
    "amqp_durable_queues": "amqp_durable_queues",
    "amqp_auto_delete": "amqp_auto_delete",
    "rpc_conn_pool_size": "rpc_conn_pool_size",
    "ssl": "ssl",
    "ssl_version": "ssl_version",
    "ssl_key_file": "ssl_key_file",
    "ssl_cert_file": "ssl_cert_file",
    "ssl_ca_file": "ssl_ca_file",
    "kombu_reconnect_splay": "kombu_reconnect_splay",
    "kombu_failover_strategy": "kombu_failover_strategy",
    "rabbit_login_method": "rabbit_login_method",
    "rabbit_retry_interval": "rabbit_retry_interval",
    "rabbit_retry_backoff": "rabbit_retry_backoff",
    "rabbit_interval_max": "rabbit_interval_max",
    "rabbit_ha_queues": "rabbit_ha_queues",
    "rabbit_quorum_queue": "rabbit_quorum_queue",
    "rabbit_transient_quorum_queue": "rabbit_transient_quorum_queue",
    "rabbit_quorum_delivery_limit": "rabbit_quorum_delivery_limit",
    "rabbit_quorum_max_memory_length": "rabbit_quorum_max_memory_length",
    "rabbit_quorum_max_memory_bytes": "rabbit_quorum_max_memory_bytes",
    "rabbit_transient_queues_ttl": "rabbit_transient_queues_ttl",
    "rabbit_qos_prefetch_count": "prefetch_count",
    "heartbeat_timeout_threshold": "heartbeat_timeout_threshold",
    "use_queue_manager": "use_queue_manager",
    "hostname": "hostname",
    "processname": "processname",
    "rabbit_stream_fanout": "rabbit_stream_fanout",
}
