"""Transports: a parsed URL plus the driver its scheme names."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from ._errors import InvalidTransportURL
from ._url import TransportURL
from .drivers.base import Driver
from .observe import _autotrace

__all__ = [
    "DRIVER_GROUP",
    "DriverUnavailable",
    "Transport",
    "get_notification_transport",
    "get_rpc_transport",
    "get_transport",
    "open_driver",
]

DRIVER_GROUP = "dovecote.drivers"
DEFAULT_URL = "memory://"
_BUILTIN_DRIVERS = {
    "memory": "dovecote.drivers.memory:MemoryDriver",
    "fake": "dovecote.drivers.memory:MemoryDriver",
    "rabbit": "dovecote.drivers.kombu:KombuDriver",
    "kombu": "dovecote.drivers.kombu:KombuDriver",
    "amqp1": "dovecote.drivers.amqp1:Amqp1Driver",
    "amqps": "dovecote.drivers.amqp1:Amqp1Driver",
    "qpid": "dovecote.drivers.amqp1:Amqp1Driver",
}
#: The extra that brings a scheme's missing package (every AMQP 1.0 spelling: Proton).
_EXTRAS = {"amqps": "amqp1", "qpid": "amqp1"}


class DriverUnavailable(InvalidTransportURL):
    """No driver could be loaded for the URL's scheme (unknown, or its package
    is missing); the oslo face raises it as ``DriverLoadFailure``."""


def _load_driver_class(url: TransportURL) -> type[Driver]:
    name = url.transport
    found = [ep for ep in entry_points(group=DRIVER_GROUP) if ep.name == name]
    try:
        if found:
            cls = found[0].load()
        elif name in _BUILTIN_DRIVERS:  # running from a source tree without metadata
            module, _, attr = _BUILTIN_DRIVERS[name].partition(":")
            cls = getattr(__import__(module, fromlist=[attr]), attr)
        else:
            known = sorted({ep.name for ep in entry_points(group=DRIVER_GROUP)} | set(
                _BUILTIN_DRIVERS))
            msg = f"no driver for scheme {name!r}; known schemes: {', '.join(known)}"
            raise DriverUnavailable(str(url), msg)
    except ImportError as exc:
        msg = (f"the {name!r} driver needs a package that is not installed ({exc.name}); "
               f"install it: pip install 'dovecote[{_EXTRAS.get(name, name)}]'")
        raise DriverUnavailable(str(url), msg) from None
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverUnavailable(str(url), f"driver {cls!r} is not a dovecote Driver")
    return cls


class Transport:
    """A connection to a messaging system, shared by clients, notifiers and
    servers. Create it with :func:`get_transport`; ``cleanup()`` closes it."""

    #: A caller gets ``NoSuchMethod``/``UnsupportedVersion`` back as themselves
    #: (the oslo face's transports say no: oslo callers get ``RemoteError``).
    rebuild_dispatch_errors = True

    def __init__(
        self, url: TransportURL, driver: Driver, *, allowed_remote_exmods: Iterable[str] = (),
    ) -> None:
        self.url = url
        _autotrace.autoload()
        self.driver = driver
        self.allowed_remote_exmods = tuple(allowed_remote_exmods)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Transport {self.url}>"

    def cleanup(self) -> None:
        """Close the driver's connections; the transport cannot be used after."""
        self.driver.cleanup()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def open_driver(
    url: str | TransportURL | None, *, control_exchange: str | None, options: dict[str, Any],
) -> tuple[TransportURL, Driver]:
    """Parse ``url`` (default ``memory://``) and build its driver: the part of
    :func:`get_transport` the oslo.messaging face shares."""
    parsed = url if isinstance(url, TransportURL) else TransportURL.parse(url or DEFAULT_URL)
    driver_cls = _load_driver_class(parsed)
    exchange = control_exchange or parsed.query.get("control_exchange") or "openstack"
    return parsed, driver_cls(parsed, control_exchange=exchange, options=options)


def get_transport(
    url: str | TransportURL | None = None, allowed_remote_exmods: Iterable[str] | None = (),
    *, control_exchange: str | None = None, **options: Any,
) -> Transport:
    """Build a transport for ``url`` (default ``memory://``).

    ``allowed_remote_exmods`` lists the modules whose exceptions a remote
    server may raise at this caller as their own class. Other keyword
    arguments are driver options and override the URL's query parameters.
    """
    parsed, driver = open_driver(url, control_exchange=control_exchange, options=options)
    return Transport(parsed, driver, allowed_remote_exmods=allowed_remote_exmods or ())


def get_rpc_transport(
    url: str | TransportURL | None = None, allowed_remote_exmods: Iterable[str] | None = (),
    **options: Any,
) -> Transport:
    """:func:`get_transport` for RPC, as oslo.messaging names it."""
    return get_transport(url, allowed_remote_exmods, **options)


def get_notification_transport(
    url: str | TransportURL | None = None, allowed_remote_exmods: Iterable[str] | None = (),
    **options: Any,
) -> Transport:
    """:func:`get_transport` for notifications, as oslo.messaging names it."""
    return get_transport(url, allowed_remote_exmods, **options)
