"""What a listener listens to (:class:`ListenerSpec`), shared by the server,
the dispatcher and the listener actors, and the duplicate window each RPC
listener keeps across restarts of its actor."""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING

from .._target import Target

if TYPE_CHECKING:
    from .._transport import Transport
    from ..drivers.base import Listener

__all__ = ["DUPLICATE_WINDOW", "ListenerSpec", "RecentIds"]

#: How many recent request ids each RPC listener remembers to drop repeats
#: (oslo.messaging keeps 16; a redelivery after a lost connection can bring back
#: a whole prefetch window, 100 by default on RabbitMQ).
DUPLICATE_WINDOW = 1024


class RecentIds:
    """The last ``size`` request ids (``_unique_id``) a listener took, to drop
    a request seen again (a redelivery after a lost connection, a replay):
    RPC is at most once. Used by one listener actor at a time."""

    __slots__ = ("_order", "_seen", "size")

    def __init__(self, size: int = DUPLICATE_WINDOW) -> None:
        self.size = size
        self._order: collections.deque[str] = collections.deque()
        self._seen: set[str] = set()

    def seen(self, unique_id: str) -> bool:
        """Whether ``unique_id`` was seen before; remembers it if not."""
        if unique_id in self._seen:
            return True
        self._seen.add(unique_id)
        self._order.append(unique_id)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return False


@dataclasses.dataclass(frozen=True, eq=False)
class ListenerSpec:
    """What one listener listens to: a transport plus an RPC target, or
    notification targets with priorities and a pool. An RPC listener's recent
    request ids outlive its actor, so a restarted listener still drops repeats."""

    transport: Transport
    target: Target | None = None
    notification_targets: tuple[tuple[Target, str], ...] = ()
    pool: str | None = None
    recent: RecentIds = dataclasses.field(default_factory=RecentIds)

    def describe(self) -> str:
        """The target as text, for logs and ``server.actors()``."""
        if self.target is not None:
            return str(self.target)
        topics = sorted({f"{t.topic}.{p}" for t, p in self.notification_targets})
        pool = f" pool={self.pool}" if self.pool else ""
        return f"<Notifications {', '.join(topics)}{pool}>"

    def open(self) -> Listener:
        """Ask the driver for the listener."""
        driver = self.transport.driver
        driver.ensure_open("listen")
        if self.target is not None:
            return driver.listen(self.target)
        return driver.listen_for_notifications(list(self.notification_targets), self.pool)
