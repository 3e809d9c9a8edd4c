"""Options of the kombu driver, the kombu connection they build, and the
exchanges and queues it declares exactly as oslo.messaging's rabbit driver
declares them (so both libraries can declare the same names without
``PRECONDITION_FAILED``).

Options come from the URL query (text) and from ``get_transport`` keyword
arguments (Python values, they win); :class:`KombuOptions` parses both.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import ssl
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import kombu.exceptions
from kombu import common as _kombu_common
from kombu import connection as _kombu_connection
from kombu import entity as _kombu_entity
from kombu import messaging as _kombu_messaging
from kombu.transport import pyamqp as _pyamqp

from ..._errors import InvalidTransportURL
from .._backoff import Backoff
from .._options import as_bool, as_number
from .._tls import TLS_OPTION_NAMES, TLS_PORT, TLSConnection, TLSOptions
from . import _frames
from ._redis import REDIS_SCHEMES, redis_transport

if TYPE_CHECKING:
    from ..._url import TransportURL

__all__ = [
    "AMQP_SCHEMES",
    "NOTIFICATION_BOUNDS",
    "OPTION_NAMES",
    "Connection",
    "Consumer",
    "Exchange",
    "KombuOptions",
    "Producer",
    "Queue",
    "binding",
    "build_connection",
    "connection_errors",
    "maybe_declare",
]

# kombu's constructors carry no annotations, so strict typing sees them as Any.
Connection: Any = _kombu_connection.Connection
Consumer: Any = _kombu_messaging.Consumer
Producer: Any = _kombu_messaging.Producer
Exchange: Any = _kombu_entity.Exchange
Queue: Any = _kombu_entity.Queue
binding: Any = _kombu_entity.binding
maybe_declare: Any = _kombu_common.maybe_declare

AMQP_SCHEMES = frozenset({"rabbit", "amqp", "pyamqp"})
#: The options bounding notification queues (dovecote's own; oslo.messaging has none).
NOTIFICATION_BOUNDS = ("notification_queue_ttl", "notification_queue_max_length")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KombuOptions:
    """Every option the kombu driver reads, with oslo.messaging's defaults
    unless noted. The docs' options table (docs/reference/options.md) says what each does."""

    heartbeat_timeout_threshold: int = 60
    rabbit_login_method: str = "AMQPLAIN"
    amqp_durable_queues: bool = False
    amqp_auto_delete: bool = False
    rabbit_ha_queues: bool = False
    rabbit_quorum_queue: bool = False
    rabbit_quorum_delivery_limit: int = 0
    rabbit_quorum_max_memory_length: int = 0
    rabbit_quorum_max_memory_bytes: int = 0
    rabbit_transient_quorum_queue: bool = False
    rabbit_stream_fanout: bool = False
    rabbit_transient_queues_ttl: int = 1800
    #: dovecote's: ``x-expires`` (seconds) of notification pool queues; 0: none.
    notification_pool_ttl: int = 0
    #: dovecote's: ``x-message-ttl`` of notification queues (``<topic>.<priority>``
    #: and pools), in seconds (whole milliseconds on the wire); 0: kept until taken.
    notification_queue_ttl: float = 0.0
    #: dovecote's: ``x-max-length`` of notification queues; the oldest message is
    #: dropped when a new one would exceed it; 0: unbounded.
    notification_queue_max_length: int = 0
    use_queue_manager: bool = False
    hostname: str = dataclasses.field(default_factory=socket.gethostname)
    processname: str = dataclasses.field(
        default_factory=lambda: os.path.basename(sys.argv[0]) or "python")  # noqa: PTH119
    prefetch_count: int = 100
    rabbit_retry_interval: float = 1.0
    rabbit_retry_backoff: float = 2.0
    rabbit_interval_max: float = 30.0
    kombu_reconnect_splay: float = 0.0
    max_retries: int | None = None
    listen_retries: int = 3
    kombu_failover_strategy: str = "round-robin"
    connect_timeout: float = 5.0
    confirm_timeout: float = 30.0
    rpc_conn_pool_size: int = 30
    at_least_once: bool = False
    transport_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: ``ssl`` and its options, shared with the other broker drivers.
    tls: TLSOptions = dataclasses.field(default_factory=TLSOptions)

    @classmethod
    def parse(cls, url: TransportURL, options: Mapping[str, Any]) -> KombuOptions:
        """Build the options from ``options`` (the URL query merged with keyword
        arguments), raising :class:`InvalidTransportURL` for a bad value."""
        values: dict[str, Any] = {}
        if "rabbit_qos_prefetch_count" in options and "prefetch_count" not in options:
            values["prefetch_count"] = options["rabbit_qos_prefetch_count"]
        if "sasl_mechanisms" in options and "rabbit_login_method" not in options:
            values["rabbit_login_method"] = options["sasl_mechanisms"]  # amqp1://'s name
        for field in dataclasses.fields(cls):
            if field.name in options and field.name != "tls":
                values[field.name] = options[field.name]
        parsed: dict[str, Any] = {}
        for name, value in values.items():
            kind = cls._kinds()[name]
            if value is None and name in {"max_retries"} | cls._optional_text():
                parsed[name] = None
            elif kind == "bool":
                parsed[name] = as_bool(url, name, value)
            elif kind == "int":
                parsed[name] = as_number(url, name, value, int)
            elif kind == "float":
                parsed[name] = as_number(url, name, value, float)
            elif kind == "mapping":
                if not isinstance(value, Mapping):
                    raise InvalidTransportURL(
                        str(url), "option transport_options must be a dict: pass it as a "
                        "get_transport() keyword argument, not in the URL",
                    )
                parsed[name] = dict(value)
            else:
                parsed[name] = str(value)
        if parsed.get("max_retries") == -1:
            parsed["max_retries"] = None
        parsed["tls"] = TLSOptions.parse(url, options)
        method = str(parsed.get("rabbit_login_method", "AMQPLAIN")).upper()
        if method not in _LOGIN_METHODS:
            raise InvalidTransportURL(str(url), f"option rabbit_login_method={method!r} is not "
                                      f"one of {', '.join(sorted(_LOGIN_METHODS))}")
        if method == "EXTERNAL" and not (parsed["tls"].enabled and parsed["tls"].cert_file):
            raise InvalidTransportURL(str(url), "rabbit_login_method=EXTERNAL authenticates with "
                                      "a client certificate: set ssl=true and ssl_cert_file")
        parsed["rabbit_login_method"] = method
        opts = cls(**parsed)
        opts._check(url)
        return opts

    def _check(self, url: TransportURL) -> None:
        """Refuse combinations oslo.messaging refuses, saying what to change."""
        if (self.rabbit_quorum_queue or self.rabbit_transient_quorum_queue) \
                and self.rabbit_ha_queues:
            raise InvalidTransportURL(
                str(url), "rabbit_quorum_queue (or rabbit_transient_quorum_queue) and "
                "rabbit_ha_queues are both set: a queue is either quorum or mirrored, choose one",
            )
        if self.rabbit_stream_fanout and not self.rabbit_transient_quorum_queue:
            raise InvalidTransportURL(
                str(url), "rabbit_stream_fanout needs rabbit_transient_quorum_queue=true "
                "(as in oslo.messaging): set both",
            )
        if self.rabbit_stream_fanout and self.prefetch_count <= 0:
            raise InvalidTransportURL(
                str(url), "rabbit_stream_fanout needs prefetch_count (rabbit_qos_prefetch_count) "
                "above 0: a stream consumer needs a prefetch limit",
            )
        if self.use_queue_manager and not (self.hostname and self.processname):
            raise InvalidTransportURL(
                str(url), "use_queue_manager needs a non-empty hostname and processname",
            )
        self._check_notification_bounds(url)

    def _check_notification_bounds(self, url: TransportURL) -> None:
        """``notification_queue_ttl`` and ``notification_queue_max_length`` are
        queue arguments only RabbitMQ reads, and a TTL is whole milliseconds."""
        bounded = [name for name in NOTIFICATION_BOUNDS if getattr(self, name)]
        if bounded and url.scheme.removeprefix("kombu+") not in AMQP_SCHEMES:
            raise InvalidTransportURL(
                str(url), f"option {' and '.join(bounded)}: a RabbitMQ queue argument, "
                f"which {url.scheme}:// has no equivalent for; leave it unset")
        if 0 < self.notification_queue_ttl < 0.001:
            raise InvalidTransportURL(
                str(url), f"option notification_queue_ttl={self.notification_queue_ttl!r} is "
                "below the broker's 1 ms resolution: give seconds (0.5 is 500 ms), or 0 for "
                "no expiry")

    def notification_queue_arguments(self) -> dict[str, int]:
        """The queue arguments bounding a notification queue (none by default)."""
        args: dict[str, int] = {}
        if self.notification_queue_ttl > 0:
            args["x-message-ttl"] = round(self.notification_queue_ttl * 1000)
        if self.notification_queue_max_length > 0:
            args["x-max-length"] = self.notification_queue_max_length
        return args

    @staticmethod
    def _optional_text() -> set[str]:
        return set()

    @classmethod
    def _kinds(cls) -> dict[str, str]:
        kinds = {}
        for field in dataclasses.fields(cls):
            text = str(field.type)
            if text.startswith("bool"):
                kinds[field.name] = "bool"
            elif text.startswith("int"):
                kinds[field.name] = "int"
            elif text.startswith("float"):
                kinds[field.name] = "float"
            elif text.startswith("Mapping"):
                kinds[field.name] = "mapping"
            else:
                kinds[field.name] = "str"
        return kinds

    @property
    def durable(self) -> bool:
        """Topic exchanges and queues are durable with either option (quorum
        queues are always durable), as in oslo.messaging."""
        return self.amqp_durable_queues or self.rabbit_quorum_queue

    def splayed(self, interval: float) -> float:
        """``interval`` plus a random share of ``kombu_reconnect_splay``: clients
        that lost the same broker do not all come back at the same instant."""
        if self.kombu_reconnect_splay <= 0:
            return interval
        return interval + random.uniform(0, self.kombu_reconnect_splay)

    def backoff(self) -> Backoff:
        """Reconnection waits for one long-lived connection (a listener's, the
        reply consumer's): ``rabbit_retry_interval``, growing by
        ``rabbit_retry_backoff`` up to ``rabbit_interval_max``, splayed."""
        return Backoff(initial=self.rabbit_retry_interval, step=self.rabbit_retry_backoff,
                       maximum=self.rabbit_interval_max, splay=self.splayed)

    def retry_policy(self, retries: int | None) -> dict[str, Any]:
        """kombu ``ensure``/``ensure_connection`` arguments for ``retries``
        (``None`` or -1: forever)."""
        return {
            "max_retries": None if retries is None or retries < 0 else retries,
            "interval_start": self.rabbit_retry_interval,
            "interval_step": self.rabbit_retry_backoff,
            "interval_max": self.rabbit_interval_max,
        }


#: Every option the driver reads, ``rabbit_qos_prefetch_count`` (oslo.messaging's
#: name for ``prefetch_count``) included.
OPTION_NAMES = frozenset(
    f.name for f in dataclasses.fields(KombuOptions) if f.name != "tls") | TLS_OPTION_NAMES | {
    "sasl_mechanisms", "rabbit_qos_prefetch_count"}
_LOGIN_METHODS = frozenset({"AMQPLAIN", "PLAIN", "EXTERNAL"})


class _Connection(TLSConnection, _pyamqp.Connection):
    """kombu's py-amqp connection, with dovecote's TLS (see :mod:`.._tls`), and
    frames read safely, bodies handed over as bytes (see :mod:`._frames`)."""

    Channel = _frames.Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("frame_handler", _frames.frame_handler)
        super().__init__(*args, **kwargs)


class AMQPTransport(_pyamqp.Transport):
    """kombu's py-amqp transport, making :class:`_Connection`\\ s."""

    Connection = _Connection


def _host_urls(url: TransportURL, *, default_port: int | None = None) -> list[str]:
    """One kombu URL per host of ``url`` (kombu takes alternates ``;``-joined)."""
    scheme = url.scheme.removeprefix("kombu+")
    if scheme == "rabbit":
        scheme = "amqp"
    vhost = quote(url.virtual_host or "", safe="")
    if not url.hosts:
        if scheme in AMQP_SCHEMES:
            return [f"{scheme}://guest:guest@localhost:5672/{vhost}"]
        return [f"{scheme}://" + (f"/{vhost}" if vhost else "")]
    out = []
    for host in url.hosts:
        creds = ""
        if host.username is not None or host.password is not None:
            creds = quote(host.username or "", safe="")
            if host.password is not None:
                creds += ":" + quote(host.password, safe="")
            creds += "@"
        name = host.hostname or "localhost"
        if ":" in name:
            name = f"[{name}]"
        port = f":{host.port or default_port}" if host.port or default_port else ""
        out.append(f"{scheme}://{creds}{name}{port}/{vhost}")
    return out


def build_connection(url: TransportURL, opts: KombuOptions, *, purpose: str) -> Any:
    """A (not yet connected) kombu connection to every host of ``url``:
    failover follows ``kombu_failover_strategy``; publisher confirms are on
    for AMQP. ``purpose`` names the connection in the broker's listings."""
    is_amqp = url.scheme.removeprefix("kombu+") in AMQP_SCHEMES
    tls = opts.tls if opts.tls.enabled else None
    urls = _host_urls(url, default_port=TLS_PORT if tls is not None and is_amqp else None)
    transport_options: dict[str, Any] = {}
    if is_amqp:
        transport_options["confirm_publish"] = True
        transport_options["client_properties"] = {
            "connection_name": f"dovecote:{os.getpid()}:{purpose}",
            "capabilities": {
                "authentication_failure_close": True,
                "connection.blocked": True,
                "consumer_cancel_notify": True,
            },
        }
    else:
        transport_options["polling_interval"] = 0.05
    transport_options.update(opts.transport_options)
    extra: dict[str, Any] = {}
    if is_amqp:
        # dovecote's transport: the TLS context, verified per host (failover too)
        extra = {"transport": AMQPTransport, "ssl": tls or False,
                 "login_method": opts.rabbit_login_method}
        if tls is not None:
            tls.context()  # bad TLS files fail here, at get_transport(), not at connect
    elif tls is not None:  # another kombu transport: kombu's own TLS settings
        extra = {"ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE,
                         "ssl_ca_certs": tls.ca_file, "ssl_certfile": tls.cert_file,
                         "ssl_keyfile": tls.key_file, "ssl_check_hostname": tls.verify}}
    if url.scheme.removeprefix("kombu+") in REDIS_SCHEMES:
        try:
            extra["transport"] = redis_transport()  # drops list items that are no kombu message
        except ImportError as exc:
            raise InvalidTransportURL(str(url), str(exc)) from None
    return Connection(
        ";".join(urls),
        heartbeat=opts.heartbeat_timeout_threshold if purpose != "publish" else 0,
        failover_strategy=opts.kombu_failover_strategy,
        connect_timeout=opts.connect_timeout,
        transport_options=transport_options,
        **extra,
    )


def connection_errors(conn: Any) -> tuple[type[BaseException], ...]:
    """Every error that means "this connection or channel is gone"."""
    return (
        kombu.exceptions.KombuError, *conn.connection_errors, *conn.channel_errors,
    )
