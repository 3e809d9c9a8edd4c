"""dovecote: RPC and notifications between threaded services, on pykka actors."""

from ._endpoints import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    expected_exceptions,
    expose,
)
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
from ._serializer import JsonPayloadSerializer, NoOpSerializer, Serializer
from ._target import Target
from ._transport import (
    Transport,
    get_notification_transport,
    get_rpc_transport,
    get_transport,
)
from ._url import TransportHost, TransportURL
from .notify._dead_letters import DeadLetter, replay_dead_letters, take_dead_letters
from .notify._filter import NotificationFilter
from .notify._listener import (
    NotificationResult,
    get_batch_notification_listener,
    get_notification_listener,
)
from .notify._notifier import Notifier, get_test_notifications, reset_test_notifications
from .observe._logging import configure_logging
from .rpc._client import RPCClient, get_rpc_client
from .rpc._server import get_rpc_server

__all__ = [
    "DeadLetter",
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy",
    "MessageDeliveryFailure",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingTimeout",
    "NoOpSerializer",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCVersionCapError",
    "RemoteError",
    "Serializer",
    "Target",
    "Transport",
    "TransportHost",
    "TransportURL",
    "UnsupportedVersion",
    "configure_logging",
    "expected_exceptions",
    "expose",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
    "get_test_notifications",
    "get_transport",
    "replay_dead_letters",
    "reset_test_notifications",
    "take_dead_letters",
]
