"""``oslo_messaging.server``: the server class and its errors.

Servers of this face are dovecote's actor servers with oslo's two extra
spellings: ``start(override_pool_size=None)`` and ``reset()``. ``start()`` on
a running server does nothing, ``stop()`` never blocks, ``wait()`` returns
once in-flight requests finished, as in oslo.messaging.
"""

from __future__ import annotations

from .. import actors
from ._errors import ExecutorLoadFailure, MessagingServerError, ServerListenError

__all__ = [
    "ExecutorLoadFailure",
    "MessageHandlingServer",
    "MessagingServerError",
    "ServerListenError",
]


class MessageHandlingServer(actors.MessageHandlingServer):
    """A dovecote server (listener actors, a dispatcher, worker actors) that
    also answers to oslo.messaging's ``start``/``reset`` spellings. Build it
    with :func:`~dovecote.oslo.get_rpc_server` or the listener factories."""

    def start(self, override_pool_size: int | None = None) -> None:
        """Start serving; ``override_pool_size`` replaces the number of worker
        actors (``executor_thread_pool_size``) for this start."""
        if override_pool_size is None:
            super().start()
            return
        if override_pool_size < 1:
            msg = f"override_pool_size must be at least 1, not {override_pool_size}"
            raise ValueError(msg)
        configured, self.max_workers = self.max_workers, override_pool_size
        try:
            super().start()
        finally:  # a later start() without it gets the configured size again
            self.max_workers = configured

    def reset(self) -> None:
        """Nothing to reset: kept because oslo.messaging's servers have it
        (dovecote's listeners reconnect on their own)."""
