"""Transport drivers: one module (or folder) per transport, all behind :class:`Driver`.

What every driver shares lives here too: :func:`unpack` turns whatever a
driver received into an :class:`IncomingMessage`'s fields and never raises.
"""

from ._decoding import Unpacked, unpack
from .base import Driver, IncomingMessage, Listener, PendingReply, UnsendableReply

__all__ = [
    "Driver",
    "IncomingMessage",
    "Listener",
    "PendingReply",
    "Unpacked",
    "UnsendableReply",
    "unpack",
]
