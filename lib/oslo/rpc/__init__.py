"""``oslo_messaging.rpc``: RPC clients and servers, as oslo.messaging names them."""

from ..._endpoints import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    expected_exceptions,
    expose,
)
from ..._errors import (
    ExpectedException,
    NoSuchMethod,
    RemoteError,
    RPCVersionCapError,
    UnsupportedVersion,
)
from ...rpc._dispatcher import RPCDispatcher
from .._errors import ClientSendError, RPCDispatcherError
from .client import RPCClient, get_rpc_client
from .server import get_rpc_server
from .transport import get_rpc_transport

__all__ = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "UnsupportedVersion",
    "expected_exceptions",
    "expose",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
