"""``oslo_messaging.rpc``: RPC clients and servers, as oslo.messaging names them."""

from .client import ClientSendError, RemoteError, RPCClient, RPCVersionCapError, get_rpc_client
from .dispatcher import (
    DefaultRPCAccessPolicy,
    ExpectedException,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    NoSuchMethod,
    RPCAccessPolicyBase,
    RPCDispatcher,
    RPCDispatcherError,
    UnsupportedVersion,
)
from .server import expected_exceptions, expose, get_rpc_server
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
