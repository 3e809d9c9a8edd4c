"""The exceptions oslo.messaging has and dovecote's native API does not need,
with oslo's constructor signatures, all :class:`~dovecote.MessagingException`."""

from __future__ import annotations

from typing import Any

from .._errors import MessagingException

__all__ = [
    "ClientSendError",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "MessagingServerError",
    "RPCDispatcherError",
    "ServerListenError",
]


class DriverLoadFailure(MessagingException):
    """No transport driver could be loaded for a URL's scheme."""

    def __init__(self, driver: str, ex: BaseException) -> None:
        super().__init__(f"failed to load transport driver {driver!r}: {ex}")
        self.driver = driver
        self.ex = ex


class MessagingServerError(MessagingException):
    """Base class of the errors a server raises."""


class ExecutorLoadFailure(MessagingServerError):
    """The ``executor`` asked for is not one dovecote runs."""

    def __init__(self, executor: Any, ex: object) -> None:
        super().__init__(f"failed to load executor {executor!r}: {ex}")
        self.executor = executor
        self.ex = ex


class ServerListenError(MessagingServerError):
    """A server could not start listening on a target."""

    def __init__(self, target: Any, ex: object) -> None:
        super().__init__(f"failed to listen on target {target}: {ex}")
        self.target = target
        self.ex = ex


class ClientSendError(MessagingException):
    """A client could not send a request to a target."""

    def __init__(self, target: Any, ex: object) -> None:
        super().__init__(f"failed to send to target {target}: {ex}")
        self.target = target
        self.ex = ex


class RPCDispatcherError(MessagingServerError):
    """Base class of the errors an RPC dispatcher raises."""
