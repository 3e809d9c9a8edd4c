"""oslo.messaging's API on dovecote: ``import dovecote.oslo as oslo_messaging``.

Every public name of oslo.messaging 18 with its signature, reading the same
``oslo.config`` options (``dovecote.oslo.opts.list_opts``), built on
:mod:`dovecote.rpc` and :mod:`dovecote.notify`. Install with
``pip install 'dovecote[oslo]'``. What behaves differently is in the docs'
migration guide (``docs/guides/oslo.md``). dovecote's one name beyond
oslo.messaging's: :class:`UnimplementedOptionWarning`, to filter the warning an
option dovecote registers but does not implement gives when it is set.
"""

from .._endpoints import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    expected_exceptions,
    expose,
)
from .._errors import (
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
from ..rpc._dispatcher import RPCDispatcher
from . import dispatcher, exceptions, notify, rpc, serializer, server, target, transport
from ._config import UnimplementedOptionWarning
from ._errors import (
    ClientSendError,
    DriverLoadFailure,
    ExecutorLoadFailure,
    MessagingServerError,
    RPCDispatcherError,
    ServerListenError,
)
from .notify import (
    LoggingErrorNotificationHandler,
    LoggingNotificationHandler,
    NotificationFilter,
    NotificationResult,
    Notifier,
    PublishErrorsHandler,
    get_batch_notification_listener,
    get_notification_listener,
    get_notification_transport,
)
from .rpc import RPCClient, get_rpc_client, get_rpc_server, get_rpc_transport
from .serializer import JsonPayloadSerializer, NoOpSerializer, Serializer
from .server import MessageHandlingServer
from .target import Target
from .transport import (
    Transport,
    TransportHost,
    TransportOptions,
    TransportURL,
    get_transport,
    set_transport_defaults,
)

__all__ = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy",
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "MessageDeliveryFailure",
    "MessageHandlingServer",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "NoOpSerializer",
    "NoSuchMethod",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "Serializer",
    "ServerListenError",
    "Target",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "UnimplementedOptionWarning",
    "UnsupportedVersion",
    "dispatcher",
    "exceptions",
    "expected_exceptions",
    "expose",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
    "get_transport",
    "notify",
    "rpc",
    "serializer",
    "server",
    "set_transport_defaults",
    "target",
    "transport",
]
