"""The exceptions dovecote raises, all under :class:`MessagingException`.

Their constructors take the same arguments as oslo.messaging's classes of the
same name, so a failure serialized by either library rebuilds on the other.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "ExpectedException",
    "InvalidTarget",
    "InvalidTransportURL",
    "MessageDeliveryFailure",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingTimeout",
    "NoSuchMethod",
    "RPCVersionCapError",
    "RemoteError",
    "UnsupportedVersion",
]


class MessagingException(Exception):
    """Base class of every error dovecote raises."""

    def __init__(self, msg: str = "", *args: Any) -> None:
        super().__init__(msg, *args)
        self.msg = msg

    def __str__(self) -> str:
        return self.msg


class MessagingTimeout(MessagingException, TimeoutError):
    """No reply arrived in time (or the server stopped sending heartbeats)."""


class InvalidTarget(MessagingException, ValueError):
    """A target lacks what the operation needs (a topic, or no fanout on a call)."""

    def __init__(self, msg: str, target: object = None) -> None:
        super().__init__(f"{msg}: {target}" if target is not None else msg)
        self.target = target


class InvalidTransportURL(MessagingException, ValueError):
    """A transport URL could not be parsed or names no known driver."""

    def __init__(self, url: str, msg: str) -> None:
        super().__init__(f"Invalid transport URL {url!r}: {msg}")
        self.url = url


class MessageDeliveryFailure(MessagingException):
    """The broker refused a message or could not be reached within the retries."""


class MessageUndeliverable(MessagingException):
    """The broker had no queue to route a mandatory message to."""

    def __init__(
        self, exception: object = None, exchange: str = "", routing_key: str = "",
        message: object = None,
    ) -> None:
        super().__init__(
            f"Message to exchange {exchange!r} with routing key {routing_key!r} was not "
            "routed to any queue: is a server listening on that target?"
        )
        self.exception = exception
        self.exchange = exchange
        self.routing_key = routing_key
        self.message = message


class RPCVersionCapError(MessagingException):
    """A call asked for a version above the client's ``version_cap``."""

    def __init__(self, version: str, version_cap: str) -> None:
        super().__init__(
            f"Requested message version, {version} is incompatible. It needs to be equal "
            f"in major version and less than or equal in minor version as the specified "
            f"version cap {version_cap}."
        )
        self.version = version
        self.version_cap = version_cap


class RemoteError(MessagingException):
    """An exception raised by a remote endpoint whose type may not be rebuilt here.

    ``exc_type`` is the remote class name, ``value`` its message and
    ``traceback`` the remote traceback as text.
    """

    def __init__(
        self, exc_type: str | None = None, value: str | None = None,
        traceback: str | list[str] | None = None,
    ) -> None:
        if isinstance(traceback, list):
            traceback = "".join(traceback)
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback
        super().__init__(
            f"Remote error: {exc_type} {value}\n{traceback}".rstrip("\n")
        )


class NoSuchMethod(MessagingException, AttributeError):
    """No endpoint exposes the requested method (``hint``: where it is, when
    it exists in another namespace or version)."""

    def __init__(self, method: str, *, hint: str = "") -> None:
        msg = f"Endpoint does not support RPC method {method}"
        super().__init__(f"{msg}; {hint}" if hint else msg)
        self.method = method
        self.args = (method,)


class UnsupportedVersion(MessagingException):
    """No endpoint supports the requested namespace and version (``hint``: where
    the method is, when it exists in another namespace or version)."""

    def __init__(self, version: str, method: str | None = None, *, hint: str = "") -> None:
        msg = f"Endpoint does not support RPC version {version}"
        if method:
            msg = f"{msg}. Attempted method: {method}"
        super().__init__(f"{msg}; {hint}" if hint else msg)
        self.version = version
        self.method = method
        self.args = (version, method)


class ExpectedException(Exception):
    """Wraps an exception an endpoint declared with ``expected_exceptions``.

    The server logs it at info level, without a traceback (the endpoint said
    it may happen); the caller gets the original exception.
    """

    def __init__(self, exc_info: tuple[Any, Any, Any] | None = None) -> None:
        # oslo's spelling ExpectedException(): raised in an except block
        found: tuple[Any, Any, Any] = exc_info or sys.exc_info()
        super().__init__(str(found[1]))
        self.exc_info = found


for _cls in (
    MessagingException, MessagingTimeout, InvalidTarget, InvalidTransportURL,
    MessageDeliveryFailure, MessageUndeliverable, RPCVersionCapError, RemoteError,
    NoSuchMethod, UnsupportedVersion, ExpectedException,
):
    _cls.__module__ = "dovecote"
