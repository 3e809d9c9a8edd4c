"""``[oslo_messaging_amqp]``: oslo.messaging registered this group for its AMQP
1.0 driver until 14.0 removed both. dovecote has an AMQP 1.0 driver
(``amqp1://``), so it registers the old options that mean what one of that
driver's options means, with oslo.messaging 12's names, types, defaults and
deprecated ``[amqp1]`` group, and maps each (``AMQP_TO_DRIVER``). The other
old options are not registered: an unregistered option in a config file is
ignored. Part of :mod:`._optdefs`."""

from __future__ import annotations

from oslo_config import cfg

__all__ = ["AMQP_GROUP", "AMQP_OPTS", "AMQP_TO_DRIVER"]

AMQP_GROUP = "oslo_messaging_amqp"
_OLD_GROUP = "amqp1"

AMQP_OPTS: list[cfg.Opt] = [
    cfg.IntOpt("idle_timeout", default=0, deprecated_group=_OLD_GROUP,
               help="AMQP 1.0 idle timeout in seconds (the heartbeat): a connection silent "
                    "for longer is dropped. Left at 0, dovecote keeps its own 10 s (heartbeat=0 "
                    "in the URL turns it off); against RabbitMQ it is at least 2 s."),
    cfg.BoolOpt("ssl", default=False,
                help="Connect over TLS (amqps:// does too). The broker's certificate chain and "
                     "host name are always checked, against ssl_ca_file or else the system's "
                     "trust store."),
    cfg.StrOpt("ssl_ca_file", default="", deprecated_group=_OLD_GROUP,
               help="PEM CA certificates the broker's certificate must chain to; empty: the "
                    "system's trust store."),
    cfg.StrOpt("ssl_cert_file", default="", deprecated_group=_OLD_GROUP,
               help="PEM client certificate shown to the broker (needed for SASL EXTERNAL)."),
    cfg.StrOpt("ssl_key_file", default="", deprecated_group=_OLD_GROUP,
               help="PEM private key of ssl_cert_file, when that file does not hold it."),
    cfg.StrOpt("ssl_key_password", deprecated_group=_OLD_GROUP, secret=True,
               help="Passphrase that unlocks an encrypted ssl_key_file."),
    cfg.StrOpt("sasl_mechanisms", default="", deprecated_group=_OLD_GROUP,
               help="SASL mechanisms to offer, separated by spaces (PLAIN, EXTERNAL, ...); "
                    "empty: PLAIN when the URL names a user, else ANONYMOUS."),
    cfg.IntOpt("connection_retry_interval", default=1, min=1,
               help="Seconds to wait after a first failed connection attempt before the "
                    "next; each further failure doubles the wait, up to "
                    "connection_retry_interval_max. Left at 1, dovecote keeps its own 0.2 s."),
    cfg.IntOpt("connection_retry_interval_max", default=30, min=1,
               help="Upper bound, in seconds, of the wait between reconnection attempts. Left "
                    "at 30, dovecote keeps its own 5 s."),
    cfg.IntOpt("rpc_server_credit", default=100, min=1,
               help="Credit (messages in flight) granted per receiving link. dovecote has one "
                    "window for all its links, notification listeners and replies as well as "
                    "RPC servers; left at 100, it keeps its own 10."),
]

#: Each registered option -> the ``amqp1://`` driver option it becomes.
AMQP_TO_DRIVER: dict[str, str] = {
    "idle_timeout": "heartbeat",
    "ssl": "ssl",
    "ssl_ca_file": "ssl_ca_file",
    "ssl_cert_file": "ssl_cert_file",
    "ssl_key_file": "ssl_key_file",
    "ssl_key_password": "ssl_key_password",
    "sasl_mechanisms": "sasl_mechanisms",
    "connection_retry_interval": "reconnect_delay",
    "connection_retry_interval_max": "reconnect_max_delay",
    "rpc_server_credit": "prefetch",
}
