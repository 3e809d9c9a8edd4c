"""TLS and SASL for the ``amqp1://`` driver: the same options and guarantees as
``rabbit://`` (see :mod:`.._tls`), through Proton's ``SSLDomain`` for the AMQP
1.0 connections and py-amqp for the AMQP 0-9-1 connection that declares
queues.

SASL ``PLAIN`` sends the password as it is: over a cleartext connection it is
allowed only to a loopback host, or with ``sasl_allow_insecure=true``. No
credentials are made up: without a user in the URL the AMQP 1.0 connections
use ``ANONYMOUS`` (or ``EXTERNAL``, with a client certificate), and the
declaring connection ``EXTERNAL`` or nothing.
"""

from __future__ import annotations

import dataclasses
import pathlib
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cproton import pn_ssl_domain_set_protocols
from proton import SSLDomain

from ..._errors import InvalidTransportURL
from .._options import as_bool
from .._tls import (
    TLS_PORT,
    TLSConnection,
    TLSOptions,
    TLSRefused,
    diagnose,
    is_address,
    is_loopback,
    verified_fingerprint,
)

if TYPE_CHECKING:
    from ..._url import TransportHost, TransportURL

__all__ = ["Security"]

_PROTOCOLS = {ssl.TLSVersion.TLSv1_2: "TLSv1.2 TLSv1.3", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}


def _system_trust() -> str | None:
    """The system's CA bundle (file or directory), for a TLS domain given no ``ssl_ca_file``."""
    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile, paths.capath, paths.openssl_capath):
        if path and pathlib.Path(path).exists():
            return path
    return None


@dataclasses.dataclass(frozen=True)
class Security:
    """How the driver's connections authenticate and encrypt."""

    tls: TLSOptions
    mechanisms: str | None
    allow_insecure: bool
    _domain: list[SSLDomain] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def parse(cls, url: TransportURL, options: Mapping[str, Any], *,
              declares: bool) -> Security:
        """The options of ``url`` (``amqps://`` turns TLS on), checked: PLAIN in
        cleartext to another host is refused unless ``sasl_allow_insecure``;
        ``declares`` (``addressing=rabbitmq``) needs credentials for AMQP 0-9-1."""
        tls = TLSOptions.parse(url, options, default=url.transport == "amqps")
        mechanisms = options.get("sasl_mechanisms")
        security = cls(tls, str(mechanisms).upper() if mechanisms else None,
                       as_bool(url, "sasl_allow_insecure", options.get("sasl_allow_insecure",
                                                                       False)))
        for host in url.hosts:
            if (host.username is not None and not tls.enabled and not security.allow_insecure
                    and "PLAIN" in security.mechanisms_for(host).split()
                    and not is_loopback(host.hostname)):
                msg = (f"SASL PLAIN would send the password in cleartext to {host.hostname}: "
                       "connect with TLS (amqps:// or ssl=true), or set "
                       "sasl_allow_insecure=true to accept that")
                raise InvalidTransportURL(str(url), msg)
            if declares and host.username is None and security.mechanisms != "EXTERNAL":
                msg = (f"no user for {host.hostname}: addressing=rabbitmq declares queues over "
                       "AMQP 0-9-1, which needs credentials; put user:password in the URL, or "
                       "use sasl_mechanisms=EXTERNAL with a client certificate")
                raise InvalidTransportURL(str(url), msg)
        if security.mechanisms == "EXTERNAL" and not (tls.enabled and tls.cert_file):
            raise InvalidTransportURL(str(url), "sasl_mechanisms=EXTERNAL authenticates with a "
                                      "client certificate: set ssl=true and ssl_cert_file")
        if tls.enabled:
            tls.context()  # bad TLS files fail here, at get_transport(), not at connect
        return security

    @property
    def default_port(self) -> int:
        """5671 with TLS, else 5672."""
        return TLS_PORT if self.tls.enabled else 5672

    def mechanisms_for(self, host: TransportHost) -> str:
        """The SASL mechanisms offered: ``sasl_mechanisms``, else PLAIN with a
        user, else ANONYMOUS."""
        return self.mechanisms or ("PLAIN" if host.username is not None else "ANONYMOUS")

    def domain(self, *, names: bool = True) -> SSLDomain:
        """Proton's TLS settings (built once each): the chain and, with
        ``names``, the peer's host name verified."""
        if self._domain:
            return self._domain[0 if names else 1]
        self._domain.extend((self._make_domain(names=True), self._make_domain(names=False)))
        return self._domain[0 if names else 1]

    def _make_domain(self, *, names: bool) -> SSLDomain:
        tls = self.tls
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        # The oldest TLS version accepted: Proton has the call, its Python API not.
        if pn_ssl_domain_set_protocols(domain._domain, _PROTOCOLS[tls.min_version]):
            msg = f"Proton refused the TLS protocols {_PROTOCOLS[tls.min_version]!r}"
            raise InvalidTransportURL(tls.url, msg)
        if tls.verify:
            trust = tls.ca_file or _system_trust()
            if trust:
                domain.set_trusted_ca_db(trust)
            mode = SSLDomain.VERIFY_PEER_NAME if names else SSLDomain.VERIFY_PEER
            domain.set_peer_authentication(mode, trust)
        else:
            domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        if tls.cert_file:
            domain.set_credentials(tls.cert_file, tls.key_file or tls.cert_file,
                                   tls.key_password)
        return domain

    def pins(self, host: TransportHost) -> bool:
        """Whether the name ``host`` is verified under is an IP address: Proton
        checks host names only, so the certificate is checked by :meth:`pin`."""
        return (self.tls.enabled and self.tls.verify
                and is_address(self.tls.server_name(host.hostname or "")))

    def proton_options(self, host: TransportHost) -> tuple[str, dict[str, Any]]:
        """The URL scheme and ``BlockingConnection`` keyword arguments for ``host``
        (credentials as arguments, never inside a URL an error could show)."""
        kwargs: dict[str, Any] = {
            "allowed_mechs": self.mechanisms_for(host),
            "allow_insecure_mechs": self.allow_insecure or is_loopback(host.hostname),
        }
        if host.username is not None:
            kwargs.update(user=host.username, password=host.password or "")
        if not self.tls.enabled:
            return "amqp", kwargs
        self.tls.warn_unverified(host.hostname or "")
        kwargs.update(ssl_domain=self.domain(names=not self.pins(host)),
                      sni=self.tls.server_name(host.hostname or ""))
        return "amqps", kwargs

    def pin(self, conn: Any, host: TransportHost, port: int) -> None:
        """For a broker reached by IP address: the certificate Proton's connection
        got (its chain verified by Proton) must be the one Python's TLS verifies
        for that address; :class:`TLSRefused` if not."""
        expected = verified_fingerprint(host.hostname or "", port, self.tls)
        got = conn.conn.transport._ssl.get_cert_fingerprint_sha256()
        if got != expected:
            msg = (f"TLS: the certificate of {host.hostname}:{port} changed between two "
                   "connections: refusing a broker that may be an impostor")
            raise TLSRefused(msg)

    def refused(self, host: TransportHost, port: int) -> str | None:
        """After a failed TLS connection: why the broker's certificate was
        refused (Proton does not say), or ``None``."""
        if not self.tls.enabled or not host.hostname:
            return None
        return diagnose(host.hostname, port, self.tls)

    def amqp091(self, host: TransportHost, address: str, **kwargs: Any) -> TLSConnection:
        """A py-amqp connection to ``address`` with this security (the declaring
        connection of ``addressing=rabbitmq``)."""
        if self.mechanisms == "EXTERNAL":
            kwargs["login_method"] = "EXTERNAL"
        else:  # parse() made sure there is a user; py-amqp would pick EXTERNAL if offered
            kwargs.update(userid=host.username, password=host.password or "",
                          login_method="AMQPLAIN")
        return TLSConnection(host=address, ssl=self.tls if self.tls.enabled else False,
                             **kwargs)
