"""Notification listeners: :func:`get_notification_listener` and its batch form.

The handler (endpoints by priority, filters, requeue, dead letters) is in
:mod:`dovecote.notify._handler`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._serializer import Serializer
from ._handler import PRIORITIES, NotificationHandler, NotificationResult

if TYPE_CHECKING:
    from .._target import Target
    from .._transport import Transport
    from ..actors import MessageHandlingServer

__all__ = [
    "PRIORITIES",
    "NotificationHandler",
    "NotificationResult",
    "get_batch_notification_listener",
    "get_notification_listener",
]


def _build(
    transport: Transport, targets: Iterable[Target], handler: NotificationHandler, *,
    executor: str, max_workers: int, max_in_flight: int, name: str | None,
    event_history: int, server_cls: type[MessageHandlingServer] | None,
) -> MessageHandlingServer:
    from ..actors import MessageHandlingServer

    targets = list(targets)
    server = (server_cls or MessageHandlingServer)(
        handler, executor=executor, max_workers=max_workers,
        max_in_flight=max(max_in_flight, handler.batch_size), endpoints=handler.endpoints,
        name=name or handler.pool or ",".join(str(t.topic) for t in targets),
        event_history=event_history,
    )
    server.listen_for_notifications(
        transport, [(t, p) for t in targets for p in handler.priorities], handler.pool
    )
    return server


def get_notification_listener(
    transport: Transport, targets: Iterable[Target], endpoints: Iterable[Any],
    executor: str = "threading", serializer: Serializer | None = None,
    allow_requeue: bool = False, pool: str | None = None, *, max_redeliveries: int = 3,  # noqa: FBT001, FBT002 - oslo order
    max_workers: int = 8, max_in_flight: int = 512, name: str | None = None,
    event_history: int = 200, server_cls: type[MessageHandlingServer] | None = None,
) -> MessageHandlingServer:
    """A server that calls ``endpoint.<priority>(ctxt, publisher_id,
    event_type, payload, metadata)`` for each notification on ``targets``.
    Listeners with the same ``pool`` share notifications; each pool (and each
    listener without one, per topic) gets every notification once."""
    handler = NotificationHandler(
        endpoints, serializer=serializer, allow_requeue=allow_requeue,
        max_redeliveries=max_redeliveries, pool=pool,
    )
    return _build(transport, targets, handler, executor=executor, max_workers=max_workers,
                  max_in_flight=max_in_flight, name=name, event_history=event_history,
                  server_cls=server_cls)


def get_batch_notification_listener(
    transport: Transport, targets: Iterable[Target], endpoints: Iterable[Any],
    executor: str = "threading", serializer: Serializer | None = None,
    allow_requeue: bool = False, pool: str | None = None, batch_size: int = 100,  # noqa: FBT001, FBT002
    batch_timeout: float | None = 1.0, *, max_redeliveries: int = 3, max_workers: int = 8,
    max_in_flight: int = 512, name: str | None = None, event_history: int = 200,
    server_cls: type[MessageHandlingServer] | None = None,
) -> MessageHandlingServer:
    """Like :func:`get_notification_listener`, but endpoints get lists: a
    batch is handed over once ``batch_size`` notifications arrived or
    ``batch_timeout`` seconds passed since the first of them. Each entry is a
    dict with ``ctxt``, ``publisher_id``, ``event_type``, ``payload`` and
    ``metadata``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    handler = NotificationHandler(
        endpoints, serializer=serializer, allow_requeue=allow_requeue,
        max_redeliveries=max_redeliveries, pool=pool, batch_size=batch_size,
        batch_timeout=batch_timeout,
    )
    return _build(transport, targets, handler, executor=executor, max_workers=max_workers,
                  max_in_flight=max_in_flight, name=name, event_history=event_history,
                  server_cls=server_cls)
