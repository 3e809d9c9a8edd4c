"""dovecote: RPC and notifications between threaded services, on pykka actors."""

from ._errors import (
    ExpectedException,
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCVersionCapError,
    UnsupportedVersion,
)
from ._target import Target
from ._transport import (
    Transport,
    get_notification_transport,
    get_rpc_transport,
    get_transport,
)
from ._url import TransportHost, TransportURL

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
    "Target",
    "Transport",
    "TransportHost",
    "TransportURL",
    "UnsupportedVersion",
    "get_notification_transport",
    "get_rpc_transport",
    "get_transport",
]
