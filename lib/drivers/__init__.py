"""Transport drivers: one module per transport, all behind :class:`Driver`."""

from .base import Driver, IncomingMessage, Listener, PendingReply

__all__ = ["Driver", "IncomingMessage", "Listener", "PendingReply"]
