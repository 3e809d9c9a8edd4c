"""``oslo_messaging.transport``: transports built from an oslo.config object.

``get_transport(conf, url=None, ...)`` reads ``[DEFAULT] transport_url`` and
``control_exchange`` and the driver section of the URL's scheme (see
:mod:`._config`), then builds dovecote's own driver: a transport here is a
:class:`dovecote.Transport` that also carries ``conf``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from oslo_config import cfg

from .. import _transport, _url
from .._errors import InvalidTransportURL
from . import _config, _optdefs
from ._errors import DriverLoadFailure

__all__ = [
    "DriverLoadFailure",
    "InvalidTransportURL",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "get_transport",
    "set_transport_defaults",
]

TransportHost = _url.TransportHost
_ONE_SLASH = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)")


class Transport(_transport.Transport):
    """A :class:`dovecote.Transport` with the configuration it was built from
    (``conf``), as servers and clients of this face read their defaults there.
    A server's ``NoSuchMethod``/``UnsupportedVersion`` reaches a caller as
    :class:`~dovecote.RemoteError`, as in oslo.messaging."""

    rebuild_dispatch_errors = False

    def __init__(
        self, url: _url.TransportURL, driver: Any, *, conf: cfg.ConfigOpts,
        allowed_remote_exmods: Iterable[str] = (),
    ) -> None:
        super().__init__(url, driver, allowed_remote_exmods=allowed_remote_exmods)
        self.conf = conf


class RPCTransport(Transport):
    """The transport :func:`~dovecote.oslo.get_rpc_transport` returns."""


class NotificationTransport(Transport):
    """The transport :func:`~dovecote.oslo.get_notification_transport` returns."""


class TransportOptions:
    """Per-client transport options: ``at_least_once`` sends requests with
    the mandatory flag, so a call to a topic nobody listens on fails at once
    with :class:`~dovecote.MessageUndeliverable` instead of timing out."""

    def __init__(self, at_least_once: bool = False) -> None:
        self.at_least_once = at_least_once

    def as_dict(self) -> dict[str, Any]:
        """The options as dovecote's clients take them."""
        return {"at_least_once": self.at_least_once}


class TransportURL(_url.TransportURL):
    """A parsed transport URL that, as oslo's, is built with a ``conf``."""

    def __init__(
        self, conf: cfg.ConfigOpts, transport: str | None = None,
        virtual_host: str | None = None, hosts: Iterable[_url.TransportHost] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scheme=transport or "", hosts=tuple(hosts or ()),
                         virtual_host=virtual_host, query=dict(query or {}))
        object.__setattr__(self, "conf", conf)

    @classmethod
    def parse(  # type: ignore[override]
        cls, conf: cfg.ConfigOpts, url: str | _url.TransportURL | None = None,
    ) -> TransportURL:
        """Parse ``url`` (default: ``conf.transport_url``), registering the
        transport options on ``conf`` as oslo.messaging does."""
        _config.register_opts(conf)
        text = url if url is not None else conf.transport_url
        if isinstance(text, _url.TransportURL):
            parsed = text
        else:
            # oslo also reads "fake:/" (one slash, no host) as "fake:///".
            written = _ONE_SLASH.sub(r"\1:///", str(text or _transport.DEFAULT_URL))
            parsed = _url.TransportURL.parse(written)
        return cls(conf, parsed.scheme, parsed.virtual_host, parsed.hosts, parsed.query)


def _open(
    conf: cfg.ConfigOpts, url: str | _url.TransportURL | None,
    allowed_remote_exmods: Iterable[str] | None, transport_cls: type[Transport],
) -> Transport:
    parsed = TransportURL.parse(conf, url)  # registers the options, then reads them
    options = _config.driver_options(conf, parsed)
    exchange = parsed.query.get("control_exchange") or conf.control_exchange
    try:
        found, driver = _transport.open_driver(parsed, control_exchange=exchange,
                                               options=options)
    except _transport.DriverUnavailable as exc:
        raise DriverLoadFailure(parsed.transport, exc) from None
    return transport_cls(found, driver, conf=conf,
                         allowed_remote_exmods=allowed_remote_exmods or ())


def get_transport(
    conf: cfg.ConfigOpts, url: str | _url.TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
) -> Transport:
    """A transport for ``url`` (default ``[DEFAULT] transport_url``)."""
    return _open(conf, url, allowed_remote_exmods, Transport)


def get_rpc_transport(
    conf: cfg.ConfigOpts, url: str | _url.TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
    transport_cls: type[Transport] = RPCTransport,
) -> Transport:
    """A transport for RPC clients and servers."""
    return _open(conf, url, allowed_remote_exmods, transport_cls)


def get_notification_transport(
    conf: cfg.ConfigOpts, url: str | _url.TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
) -> Transport:
    """A transport for notifiers and listeners: ``url``, else
    ``[oslo_messaging_notifications] transport_url``, else ``[DEFAULT]``'s."""
    _config.register_opts(conf)
    if url is None:
        url = _config.notification_url(conf)
    return _open(conf, url, allowed_remote_exmods, NotificationTransport)


def set_transport_defaults(control_exchange: str) -> None:
    """Set the default of ``[DEFAULT] control_exchange`` (an application's
    exchange name), as oslo.messaging's function of the same name does."""
    cfg.set_defaults(_optdefs.DEFAULT_OPTS, control_exchange=control_exchange)
