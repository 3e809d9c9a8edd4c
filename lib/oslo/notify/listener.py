"""``oslo_messaging.notify.listener``: notification listeners with
oslo.messaging's signatures, on dovecote's server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...notify import _listener
from .._executors import executor_name, pool_size
from ..server import MessageHandlingServer
from ..transport import get_notification_transport

__all__ = [
    "NotificationServer",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
]


class NotificationServer(MessageHandlingServer):
    """The server the listener factories return."""


def get_notification_listener(
    transport: Any, targets: Iterable[Any], endpoints: Iterable[Any],
    executor: str | None = None, serializer: Any = None, allow_requeue: bool = False,
    pool: str | None = None,
) -> NotificationServer:
    """A listener calling ``endpoint.<priority>(ctxt, publisher_id,
    event_type, payload, metadata)`` for each notification on ``targets``."""
    server = _listener.get_notification_listener(
        transport, targets, endpoints, executor_name(executor), serializer, allow_requeue, pool,
        max_workers=pool_size(transport), server_cls=NotificationServer,
    )
    assert isinstance(server, NotificationServer)
    return server


def get_batch_notification_listener(
    transport: Any, targets: Iterable[Any], endpoints: Iterable[Any],
    executor: str | None = None, serializer: Any = None, allow_requeue: bool = False,
    pool: str | None = None, batch_size: int | None = None, batch_timeout: float | None = None,
) -> NotificationServer:
    """A listener handing endpoints lists of up to ``batch_size`` (default 1)
    notifications, or fewer once ``batch_timeout`` seconds passed."""
    server = _listener.get_batch_notification_listener(
        transport, targets, endpoints, executor_name(executor), serializer, allow_requeue, pool,
        batch_size or 1, batch_timeout, max_workers=pool_size(transport),
        server_cls=NotificationServer,
    )
    assert isinstance(server, NotificationServer)
    return server
