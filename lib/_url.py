"""Transport URLs: ``scheme://user:pass@host:port[,user:pass@host2:port2]/vhost?opt=v``."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import parse_qsl, quote, unquote

from ._errors import InvalidTransportURL

__all__ = ["TransportHost", "TransportURL", "is_secret_option", "mask_password"]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*$")
_NETLOC_IN_URL = re.compile(r"(?P<head>[a-zA-Z0-9+.\-]+://)(?P<netloc>[^/?#\s'\"]*)")


def _mask_netloc(match: re.Match[str]) -> str:
    hosts = []
    for part in match.group("netloc").split(","):
        creds, at, host = part.rpartition("@")
        masked = at and ":" in creds
        hosts.append(f"{creds.partition(':')[0]}:****@{host}" if masked else part)
    return match.group("head") + ",".join(hosts)


#: A query option whose value is a secret (``ssl_key_password``, and any other
#: option named ``...password...``): shown as ``****``.
_SECRET_OPTION = re.compile(r"(?P<name>[?&][A-Za-z0-9_.\-]*password[A-Za-z0-9_.\-]*=)[^&#\s'\"]*",
                            re.IGNORECASE)


#: ``user:password@`` in a text that is not a URL (a mistyped scheme).
_BARE_CREDENTIALS = re.compile(r"(?P<user>[^\s:/@,]*):[^\s@]*@")


def is_secret_option(name: str) -> bool:
    return "password" in name.lower()


def mask_password(text: str) -> str:
    """Replace every password inside URLs in ``text`` with ``****`` (every
    host's, in a URL that lists several, and password options of the query)."""
    return _SECRET_OPTION.sub(r"\g<name>****", _NETLOC_IN_URL.sub(_mask_netloc, text))


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransportHost:
    """One broker address of a URL."""

    hostname: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def to_text(self, *, mask: bool = True) -> str:
        """``user:pass@host:port`` with the password masked unless ``mask`` is false."""
        out = ""
        if self.username is not None or self.password is not None:
            out = quote(self.username or "", safe="")
            if self.password is not None:
                out += ":" + ("****" if mask else quote(self.password, safe=""))
            out += "@"
        host = self.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        out += host
        if self.port is not None:
            out += f":{self.port}"
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransportURL:
    """A parsed transport URL. ``str()`` and ``repr()`` never show a password."""

    scheme: str
    hosts: tuple[TransportHost, ...] = ()
    virtual_host: str | None = None
    query: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def transport(self) -> str:
        """The driver name: the scheme, without a ``kombu+`` style prefix's suffix."""
        return self.scheme.split("+", 1)[0]

    @classmethod
    def parse(cls, url: str) -> TransportURL:
        """Parse ``url``, raising :class:`InvalidTransportURL` naming the bad part."""
        if not isinstance(url, str) or not url:
            raise InvalidTransportURL(str(url), "a transport URL must be a non-empty string")
        shown = mask_password(url)
        scheme, sep, rest = url.partition("://")
        if not sep:
            shown = _BARE_CREDENTIALS.sub(r"\g<user>:****@", shown)
            raise InvalidTransportURL(shown, "no scheme: write it as scheme://..., e.g. memory://")
        if not _SCHEME.match(scheme):
            raise InvalidTransportURL(shown, f"scheme {scheme!r} is not a valid URL scheme")
        rest, _, fragment = rest.partition("#")
        if fragment:
            raise InvalidTransportURL(shown, "a fragment ('#...') is not allowed")
        rest, _, query_text = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        try:
            query = dict(parse_qsl(query_text, keep_blank_values=True, strict_parsing=False))
        except ValueError as exc:
            raise InvalidTransportURL(shown, f"query {query_text!r}: {exc}") from None
        hosts = tuple(cls._parse_host(part, shown) for part in netloc.split(",") if part)
        if netloc and not hosts:
            raise InvalidTransportURL(shown, "empty host list")
        virtual_host = unquote(path) if slash else None
        return cls(
            scheme=scheme.lower(), hosts=hosts, virtual_host=virtual_host, query=query,
        )

    @staticmethod
    def _parse_host(part: str, shown: str) -> TransportHost:
        creds, at, hostport = part.rpartition("@")
        username = password = None
        if at:
            user, colon, pwd = creds.partition(":")
            username = unquote(user)
            password = unquote(pwd) if colon else None
        port: int | None = None
        if hostport.startswith("["):
            host, bracket, port_text = hostport[1:].partition("]")
            if not bracket:
                raise InvalidTransportURL(shown, f"host {hostport!r} has an unclosed '['")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = hostport.partition(":")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise InvalidTransportURL(
                    shown, f"port {port_text!r} of host {host!r} is not a number from 1 to 65535"
                )
            port = int(port_text)
        return TransportHost(
            hostname=unquote(host) or None, port=port, username=username, password=password
        )

    def to_text(self, *, mask: bool = True) -> str:
        """The URL as text, password masked unless ``mask`` is false."""
        out = f"{self.scheme}://" + ",".join(h.to_text(mask=mask) for h in self.hosts)
        if self.virtual_host is not None:
            out += "/" + quote(self.virtual_host, safe="")
        if self.query:
            out += "?" + "&".join(
                f"{quote(k)}={'****' if mask and is_secret_option(k) else quote(v)}"
                for k, v in self.query.items())
        return out

    def __str__(self) -> str:
        return self.to_text(mask=True)

    def __repr__(self) -> str:
        return f"<TransportURL {self.to_text(mask=True)}>"
