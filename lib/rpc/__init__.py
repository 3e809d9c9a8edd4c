"""RPC: clients, the dispatcher that finds an endpoint's method, and servers.

Mirrors ``oslo_messaging.rpc``: :func:`get_rpc_client` and :class:`RPCClient`
send calls and casts; :func:`get_rpc_server` builds a server on the actor
runtime (:mod:`dovecote.actors`) whose :class:`RPCHandler` runs requests through
an :class:`RPCDispatcher`.
"""

from ._client import RPCClient, get_rpc_client
from ._dispatcher import RPCDispatcher
from ._server import RPCHandler, get_rpc_server

__all__ = ["RPCClient", "RPCDispatcher", "RPCHandler", "get_rpc_client", "get_rpc_server"]
