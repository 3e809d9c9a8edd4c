"""``[oslo_messaging_kafka]``: the 14 options oslo.messaging 18 registers for
its Kafka driver, with its names, types and defaults. dovecote has no Kafka
transport, so none is acted on (``KAFKA_UNIMPLEMENTED``); each reason says
what the option would have set. Part of :mod:`._optdefs`."""

from __future__ import annotations

from oslo_config import cfg

from ._optdefs_common import not_implemented

__all__ = ["KAFKA_GROUP", "KAFKA_OPTS", "KAFKA_UNIMPLEMENTED"]

KAFKA_GROUP = "oslo_messaging_kafka"

_NO_KAFKA = "dovecote has no Kafka transport"

#: Why dovecote does not act on an option (its help says so too).
KAFKA_UNIMPLEMENTED: dict[str, str] = {
    name: f"{_NO_KAFKA} (this would set {what})" for name, what in {
        "kafka_max_fetch_bytes": "the most bytes one consumer fetch returns",
        "kafka_consumer_timeout": "how long, in seconds, a consumer poll waits",
        "consumer_group": "the consumer group notification listeners join",
        "producer_batch_timeout": "how long, in seconds, the producer waits to fill a batch",
        "producer_batch_size": "the producer's batch size, in bytes",
        "compression_codec": "the codec the producer compresses batches with",
        "enable_auto_commit": "whether consumed offsets are committed automatically",
        "max_poll_records": "the most records one poll returns",
        "security_protocol": "the protocol spoken to the Kafka brokers",
        "sasl_mechanism": "the SASL mechanism of the SASL_* protocols",
        "ssl_cafile": "the CA file the Kafka brokers' certificates are checked against",
        "ssl_client_cert_file": "the client certificate shown to the Kafka brokers",
        "ssl_client_key_file": "the private key of that client certificate",
        "ssl_client_key_password": "the password of that private key",
    }.items()
}


def _help(name: str) -> str:
    return not_implemented(KAFKA_UNIMPLEMENTED[name])


KAFKA_OPTS: list[cfg.Opt] = [
    cfg.IntOpt("kafka_max_fetch_bytes", default=1048576, help=_help("kafka_max_fetch_bytes")),
    cfg.FloatOpt("kafka_consumer_timeout", default=1.0, help=_help("kafka_consumer_timeout")),
    cfg.StrOpt("consumer_group", default="oslo_messaging_consumer",
               help=_help("consumer_group")),
    cfg.FloatOpt("producer_batch_timeout", default=0.0, help=_help("producer_batch_timeout")),
    cfg.IntOpt("producer_batch_size", default=16384, help=_help("producer_batch_size")),
    cfg.StrOpt("compression_codec", default="none",
               choices=("none", "gzip", "snappy", "lz4", "zstd"),
               help=_help("compression_codec")),
    cfg.BoolOpt("enable_auto_commit", default=False, help=_help("enable_auto_commit")),
    cfg.IntOpt("max_poll_records", default=500, help=_help("max_poll_records")),
    cfg.StrOpt("security_protocol", default="PLAINTEXT",
               choices=("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"),
               help=_help("security_protocol")),
    cfg.StrOpt("sasl_mechanism", default="PLAIN", help=_help("sasl_mechanism")),
    cfg.StrOpt("ssl_cafile", default="", help=_help("ssl_cafile")),
    cfg.StrOpt("ssl_client_cert_file", default="", help=_help("ssl_client_cert_file")),
    cfg.StrOpt("ssl_client_key_file", default="", help=_help("ssl_client_key_file")),
    # not secret: oslo.messaging 18 registers it so
    cfg.StrOpt("ssl_client_key_password", default="", help=_help("ssl_client_key_password")),
]
