"""``rabbit://`` and ``kombu+SCHEME://``: RabbitMQ and any kombu transport,
wire-compatible with oslo.messaging's rabbit driver (see :mod:`._driver`)."""

from ._driver import KombuDriver
from ._listener import (
    ERROR_HEADER,
    REDELIVERIES_HEADER,
    ROUTING_KEY_HEADER,
    KombuIncomingMessage,
    KombuListener,
)
from ._options import KombuOptions

# Named by their public path (in reprs, errors and `dovecote url`).
for _cls in (KombuDriver, KombuIncomingMessage, KombuListener, KombuOptions):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "ERROR_HEADER",
    "REDELIVERIES_HEADER",
    "ROUTING_KEY_HEADER",
    "KombuDriver",
    "KombuIncomingMessage",
    "KombuListener",
    "KombuOptions",
]
