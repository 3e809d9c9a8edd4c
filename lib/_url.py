"""Transport URLs: ``scheme://user:pass@host:port[,user:pass@host2:port2]/vhost?opt=v``."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import parse_qsl, quote, unquote

from ._errors import InvalidTransportURL

__all__ = [
    "TransportHost", "TransportURL", "is_secret_option", "mask_password", "mask_url",
]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*$")
#: A URL inside a longer text: it ends at white space or a quote.
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]*")
#: ``?name=value`` inside a longer text (the value ends at ``&``, ``#``, white
#: space or a quote).
_OPTION_IN_TEXT = re.compile(r"(?P<name>[?&][A-Za-z0-9_.\-]*=)(?P<value>[^&#\s'\"]*)")
#: What a URL that only parses with its secrets masked gets as its reason.
_ENCODE = ("it does not parse as written: percent-encode '/', '?', '#', '@', ',' and spaces "
           "in a password, user name or virtual host (as %2F, %3F, %23, %40, %2C, %20), "
           "and '&', '#' in an option's value (%26, %23)")


def is_secret_option(name: str) -> bool:
    """Whether the value of query option ``name`` is a secret, shown as ``****``:
    a name holding ``pass``, ``secret`` or ``key`` (``ssl_key_password``), but
    not a file name option (``ssl_key_file`` names a file, it is not the key)."""
    lowered = name.lower()
    return (any(word in lowered for word in ("pass", "secret", "key"))
            and not lowered.endswith("_file"))


def _mask_options(text: str) -> str:
    """``text`` with the values of its secret ``name=value`` options masked
    (see :func:`is_secret_option`), in a longer text."""
    def masked(match: re.Match[str]) -> str:
        name = match.group("name")
        return f"{name}****" if is_secret_option(unquote(name[1:-1])) else match.group(0)

    return _OPTION_IN_TEXT.sub(masked, text)


#: ``?name=`` or ``&name=`` of a query option.
_OPTION_NAME = re.compile(r"[?&](?P<name>[^=&?]*)=")
#: Where an option's value ends: the next ``&name=``.
_NEXT_OPTION = re.compile(r"&[^&=]*=")


def _secret_option_spans(text: str) -> list[tuple[int, int]]:
    """Where the values of secret query options are in ``text``: each runs to
    the next ``&name=`` or the end (an unencoded ``&``, ``#`` or ``@`` in it
    hides nothing)."""
    spans = []
    for found in _OPTION_NAME.finditer(text):
        if is_secret_option(unquote(found.group("name"))):
            following = _NEXT_OPTION.search(text, found.end())
            spans.append((found.end(), following.start() if following else len(text)))
    return spans


def _userinfo_spans(text: str, start: int) -> list[tuple[int, int]]:
    """Where the passwords of the host list at ``text[start:]`` are: each
    host's, when the host list reads one way only; else everything from the
    first ``:`` to the last ``@``, so whatever unencoded ``/ ? # @ ,`` or space a
    password holds, none of it stays (the hosts in between are lost: this is
    for texts, never for connecting)."""
    last_at = text.rfind("@", start)
    if last_at < 0:
        return []
    hosts = _hosts_read_one_way(text[start:])
    if hosts is None:
        colon = text.find(":", start, last_at)
        return [(colon + 1, last_at)] if colon >= 0 else []
    spans = []
    offset = start
    for host in hosts:
        at = host.rfind("@")
        colon = host.find(":", 0, at)
        if at >= 0 and colon >= 0:
            spans.append((offset + colon + 1, offset + at))
        offset += len(host) + 1
    return spans


def _hosts_read_one_way(text: str) -> list[str] | None:
    """The host parts of ``text``'s host list when no password in it can hold
    an unencoded delimiter (every ``@`` in the host list, one per host, hosts
    with a password not followed by hosts with a user but none, no host
    without a user before one with), else ``None``."""
    netloc = re.split(r"[/?#]", text, maxsplit=1)[0]
    if "@" in text[len(netloc):]:
        return None
    parts = netloc.split(",")
    seen_bare = seen_password = False
    for part in parts:
        count = part.count("@")
        if count > 1:
            return None
        if not count:
            seen_bare = True
            continue
        has_password = ":" in part.partition("@")[0]
        if seen_bare or (seen_password and not has_password):
            return None
        seen_password = seen_password or has_password
    return parts


def mask_url(url: str) -> str:
    """``url`` (a whole string meant as one transport URL, however malformed)
    with its user info's passwords and its secret options' values masked.
    Used on a URL before any error text quotes it or any part of it."""
    scheme, sep, _rest = url.partition("://")
    # Not a scheme (``rabbit:/user:pw@h``, a password holding "://"): from the start.
    start = len(scheme) + len(sep) if sep and _SCHEME.match(scheme) else 0
    merged: list[list[int]] = []
    for begin, end in sorted(_userinfo_spans(url, start) + _secret_option_spans(url)):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    out, done = [], 0
    for begin, end in merged:
        out += [url[done:begin], "****"]
        done = end
    out.append(url[done:])
    return "".join(out)


def mask_password(text: str) -> str:
    """Replace every password inside URLs in ``text`` with ``****`` (every
    host's, in a URL that lists several, and secret options of the query).
    A URL in a longer text ends at white space or a quote: a URL of one's own
    is masked before it reaches a text (:func:`mask_url`, ``str(TransportURL)``)."""
    return _mask_options(_URL_IN_TEXT.sub(lambda found: mask_url(found.group(0)), text))


class _Malformed(ValueError):
    """Why a URL does not parse; its text may quote any part of the URL (so it
    is only shown for a URL whose secrets are masked)."""


@dataclasses.dataclass(frozen=True)
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
        """Parse ``url``, raising :class:`InvalidTransportURL` naming the bad part.

        The error never quotes a password or a secret option: it shows the URL
        masked (:func:`mask_url`), and its reason is found by parsing that
        masked text (a URL that parses only once masked had a password that
        needs percent-encoding: the reason says so)."""
        if not isinstance(url, str) or not url:
            what = "" if isinstance(url, str) else f"<{type(url).__name__}>"
            raise InvalidTransportURL(what, "a transport URL must be a non-empty string")
        try:
            return cls._parse(url)
        except _Malformed as problem:
            shown = mask_url(url)
            if shown == url:  # nothing secret in it: the reason may quote any part
                raise InvalidTransportURL(shown, str(problem)) from None
        try:
            cls._parse(shown)
        except _Malformed as problem:
            if "****" not in str(problem):  # else the trouble is in a masked part
                raise InvalidTransportURL(shown, str(problem)) from None
        raise InvalidTransportURL(shown, _ENCODE)

    @classmethod
    def _parse(cls, url: str) -> TransportURL:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise _Malformed("no scheme: write it as scheme://..., e.g. memory://")
        if not _SCHEME.match(scheme):
            raise _Malformed(f"scheme {scheme!r} is not a valid URL scheme")
        rest, _, fragment = rest.partition("#")
        if fragment:
            raise _Malformed("a fragment ('#...') is not allowed")
        rest, _, query_text = rest.partition("?")
        netloc, slash, path = rest.partition("/")
        if "@" in path or "@" in query_text:
            # A password with an unencoded '/' or '?' ends the host part early:
            # parsed as written, its rest would become the virtual host or an option.
            raise _Malformed("an '@' after the host part: percent-encode it as %40 in a "
                             "virtual host or an option (and '/', '?' in a password as "
                             "%2F, %3F)")
        _check_query(query_text)
        try:
            query = dict(parse_qsl(query_text, keep_blank_values=True, strict_parsing=False))
        except ValueError as exc:
            raise _Malformed(f"query {query_text!r}: {exc}") from None
        hosts = tuple(cls._parse_host(part) for part in netloc.split(",") if part)
        if netloc and not hosts:
            raise _Malformed("empty host list")
        _check_credentials(hosts)
        virtual_host = unquote(path) if slash else None
        return cls(
            scheme=scheme.lower(), hosts=hosts, virtual_host=virtual_host, query=query,
        )

    @staticmethod
    def _parse_host(part: str) -> TransportHost:
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
                raise _Malformed(f"host {hostport!r} has an unclosed '['")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = hostport.partition(":")
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise _Malformed(
                    f"port {port_text!r} of host {host!r} is not a number from 1 to 65535")
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


def _check_credentials(hosts: tuple[TransportHost, ...]) -> None:
    """Refuse host lists a password with an unencoded ``,`` (or ``@``) makes: a
    host without a user name before one with, or a user name without a
    password after a host with one. (oslo.messaging warns about mixed
    credentials; here the second host would quote a piece of the password.)"""
    for index, host in enumerate(hosts[1:], start=2):
        earlier = hosts[:index - 1]
        if host.username is not None and any(h.username is None for h in earlier):
            raise _Malformed(f"host {index} has a user name but an earlier host has none: "
                             "give every host its user name and password, and percent-"
                             "encode a ',' in a password as %2C")
        if host.password is None and host.username is not None and any(
                h.password is not None for h in earlier):
            raise _Malformed(f"host {index} has a user name without a password after a "
                             "host with one: give every host its password, and percent-"
                             "encode '@' and ',' in a password as %40 and %2C")


def _check_query(query_text: str) -> None:
    """Refuse a query piece without ``=`` after a secret option: an unencoded
    ``&`` split the secret, and its rest would be read (and logged) as an
    option name."""
    secret = False
    for part in query_text.split("&") if query_text else ():
        name, equals, _value = part.partition("=")
        if secret and not equals:
            raise _Malformed("an option without '=' after a secret option: percent-encode "
                             "'&' in a secret option's value as %26")
        secret = bool(equals) and is_secret_option(unquote(name))
