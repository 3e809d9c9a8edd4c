"""TLS for every broker driver: one set of options, one ``ssl.SSLContext``, and
one way of saying why a broker's certificate was refused.

With ``ssl`` on, the broker's certificate chain and host name are always
verified: against ``ssl_ca_file``, else the system's trust store, for the name
of the host being connected to (each host of a URL listing several), or
``ssl_server_hostname``. ``ssl_version`` sets the oldest TLS version accepted
(TLS 1.2 unless set higher). ``ssl_verify=false`` turns verification off, and
is logged as a warning at every connection. The kombu driver hands the context
to py-amqp through :class:`TLSConnection`; the AMQP 1.0 driver builds Proton's
``SSLDomain`` from the same options.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import amqp
import amqp.transport

from .._errors import InvalidTransportURL, MessageDeliveryFailure
from ..observe._logging import get_logger
from ._buffered import BufferedReads, BufferedTCPTransport
from ._options import as_bool

if TYPE_CHECKING:
    from .._url import TransportURL

__all__ = [
    "TLS_OPTION_NAMES",
    "TLS_PORT",
    "TLSConnection",
    "TLSOptions",
    "TLSRefused",
    "describe_tls_error",
    "diagnose",
    "is_address",
    "is_loopback",
    "split_host",
    "verified_fingerprint",
]

#: The AMQP port for TLS, used when ``ssl`` is on and the URL names no port.
TLS_PORT = 5671
TLS_OPTION_NAMES = frozenset({
    "ssl", "ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password", "ssl_version",
    "ssl_server_hostname", "ssl_verify",
})
_VERSIONS = {"tlsv1_2": ssl.TLSVersion.TLSv1_2, "tlsv1_3": ssl.TLSVersion.TLSv1_3}
_TOO_OLD = frozenset({"sslv2", "sslv3", "sslv23", "tlsv1", "tlsv1_0", "tlsv1_1", "tls"})
# OpenSSL's verify codes, by what they mean to a user.
_EXPIRED = frozenset({9, 10})  # not yet valid, has expired
_HOSTNAME = frozenset({62, 64})  # host name or IP address mismatch
log = get_logger(__name__)


class TLSRefused(MessageDeliveryFailure):
    """The broker's certificate was refused (chain, host name or validity):
    trying again cannot help, so no driver retries it."""


def split_host(host: str) -> str:
    """The host name of ``host:port`` (or ``[v6]:port``), without the port."""
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(hostname: str | None) -> bool:
    """Whether ``hostname`` is this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if not hostname or hostname.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _version(url: TransportURL, value: Any) -> ssl.TLSVersion:
    text = str(value).strip().lower().replace(".", "_").removeprefix("protocol_")
    if text in _VERSIONS:
        return _VERSIONS[text]
    if text in _TOO_OLD:
        msg = (f"option ssl_version={value!r} is not accepted: TLS older than 1.2 is "
               "insecure; use TLSv1_2 (the default) or TLSv1_3")
    else:
        msg = f"option ssl_version={value!r} is unknown: use TLSv1_2 or TLSv1_3"
    raise InvalidTransportURL(str(url), msg)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TLSOptions:
    """The TLS options of a transport (the same names on every driver)."""

    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = dataclasses.field(default=None, repr=False)
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    server_hostname: str | None = None
    verify: bool = True
    url: str = ""
    _context: list[ssl.SSLContext] = dataclasses.field(default_factory=list, repr=False,
                                                       compare=False)

    @classmethod
    def parse(cls, url: TransportURL, options: Mapping[str, Any], *,
              default: bool = False) -> TLSOptions:
        """The TLS options among ``options``; ``default`` turns TLS on unless
        ``ssl`` says otherwise (``amqps://``)."""
        def text(name: str) -> str | None:
            value = options.get(name)
            return None if value is None or value == "" else str(value)

        return cls(
            enabled=as_bool(url, "ssl", options.get("ssl", default)),
            ca_file=text("ssl_ca_file"), cert_file=text("ssl_cert_file"),
            key_file=text("ssl_key_file"), key_password=text("ssl_key_password"),
            min_version=(_version(url, options["ssl_version"]) if options.get("ssl_version")
                         else ssl.TLSVersion.TLSv1_2),
            server_hostname=text("ssl_server_hostname"),
            verify=as_bool(url, "ssl_verify", options.get("ssl_verify", True)),
            url=str(url),
        )

    def context(self) -> ssl.SSLContext:
        """The client context (built once): the chain verified against
        ``ssl_ca_file`` only, or else the system's trust store, and the host name."""
        if self._context:
            return self._context[0]
        step = "ssl_ca_file"
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
            step = "ssl_cert_file/ssl_key_file"
            if self.cert_file:
                if self.key_password:
                    step += " with ssl_key_password"
                ctx.load_cert_chain(self.cert_file, self.key_file, password=self.key_password)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unreadable"
            msg = f"the TLS files could not be loaded ({step}): {type(exc).__name__}: {reason}"
            raise InvalidTransportURL(self.url, msg) from None
        ctx.minimum_version = self.min_version
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._context.append(ctx)
        return ctx

    def server_name(self, hostname: str) -> str:
        """The name the broker's certificate must hold when connecting to ``hostname``."""
        return self.server_hostname or hostname

    def warn_unverified(self, host: str) -> None:
        """``ssl_verify=false``: say so at each connection."""
        if self.enabled and not self.verify:
            log.warning("transport.tls_unverified", host=host, transport=self.url,
                        reason="ssl_verify=false: the broker's certificate is not checked; "
                        "anyone on the path can read and change the traffic")


def describe_tls_error(exc: BaseException, host: str, tls: TLSOptions) -> str:
    """What went wrong with a TLS connection to ``host``, which check failed,
    and what to set; never a password or key material."""
    name = tls.server_name(split_host(host))
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        reason = exc.verify_message or str(exc)
        if code in _EXPIRED:
            return (f"TLS: the certificate of {host} is outside its validity period "
                    f"({reason}): the broker must present a current certificate")
        if code in _HOSTNAME:
            return (f"TLS: the certificate of {host} is not valid for the host name {name!r} "
                    f"({reason}): connect with a name the certificate holds, or set "
                    "ssl_server_hostname to it")
        trust = f"ssl_ca_file {tls.ca_file!r}" if tls.ca_file else "the system's trust store"
        return (f"TLS: the certificate chain of {host} is not trusted by {trust} "
                f"({reason}): set ssl_ca_file to the CA that signed the broker's certificate")
    return f"TLS handshake with {host} failed: {type(exc).__name__}: {exc}"


def diagnose(host: str, port: int, tls: TLSOptions, *, timeout: float = 5.0) -> str | None:
    """Connect to ``host:port`` once with Python's TLS and say why the broker's
    certificate is refused, or ``None`` if it is not (for clients whose own
    error does not tell: Proton reports only "certificate verify failed")."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                tls.context().wrap_socket(sock, server_hostname=tls.server_name(host)):
            return None
    except ssl.SSLError as exc:
        return describe_tls_error(exc, f"{host}:{port}", tls)
    except OSError:
        return None  # not a certificate problem


def is_address(name: str) -> bool:
    """Whether ``name`` is an IP address rather than a host name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def verified_fingerprint(host: str, port: int, tls: TLSOptions, *,
                         timeout: float = 5.0) -> str:
    """The SHA-256 fingerprint (hex) of the certificate ``host:port`` presents,
    verified with Python's TLS (chain, host name or IP address, validity);
    :class:`TLSRefused` saying why if it is not valid."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                tls.context().wrap_socket(sock, server_hostname=tls.server_name(host)) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        raise TLSRefused(describe_tls_error(exc, f"{host}:{port}", tls)) from None
    assert der is not None
    return hashlib.sha256(der).hexdigest()


class _TLSTransport(BufferedReads, amqp.transport.SSLTransport):  # type: ignore[misc]
    """py-amqp's TLS transport, wrapping the socket with dovecote's context; a
    refused certificate is :class:`TLSRefused`, which no retry loop catches.
    Reads are buffered (see :mod:`._buffered`)."""

    _retry_errnos = (errno.ENOENT, errno.EAGAIN, errno.EINTR)

    def _wrap_socket(self, sock: socket.socket, context: Any = None,
                     server_hostname: str | None = None, **_: Any) -> ssl.SSLSocket:
        assert isinstance(context, ssl.SSLContext)
        return context.wrap_socket(sock, server_hostname=server_hostname,
                                   do_handshake_on_connect=False)

    def _setup_transport(self) -> None:
        try:
            super()._setup_transport()
        except ssl.SSLCertVerificationError as exc:
            options = self.sslopts
            raise TLSRefused(describe_tls_error(exc, options["host"], options["tls"])) from None


class TLSConnection(amqp.Connection):  # type: ignore[misc]
    """py-amqp's connection, for ``ssl=TLSOptions``: the context, and the host
    name verified for the host this attempt connects to (failover included)."""

    def Transport(  # noqa: N802 - py-amqp's name and signature
        self, host: str, connect_timeout: float | None, ssl: Any = False,  # noqa: FBT002
        read_timeout: float | None = None, write_timeout: float | None = None,
        socket_settings: Any = None, **kwargs: Any,
    ) -> Any:
        if not isinstance(ssl, TLSOptions):
            if ssl:  # kombu's own TLS settings: py-amqp's transport
                return super().Transport(host, connect_timeout, ssl, read_timeout,
                                         write_timeout, socket_settings, **kwargs)
            return BufferedTCPTransport(
                host, connect_timeout=connect_timeout, read_timeout=read_timeout,
                write_timeout=write_timeout, socket_settings=socket_settings, **kwargs)
        ssl.warn_unverified(host)
        options = {"context": ssl.context(), "server_hostname": ssl.server_name(split_host(host)),
                   "host": host, "tls": ssl}
        return _TLSTransport(host, connect_timeout=connect_timeout, ssl=options,
                             read_timeout=read_timeout, write_timeout=write_timeout,
                             socket_settings=socket_settings, **kwargs)
