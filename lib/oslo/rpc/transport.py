"""``oslo_messaging.rpc.transport``: :func:`get_rpc_transport`."""

from ..transport import RPCTransport, get_rpc_transport

__all__ = ["RPCTransport", "get_rpc_transport"]
