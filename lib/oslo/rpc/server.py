"""``oslo_messaging.rpc.server``: :func:`get_rpc_server` with oslo.messaging's
signature, on dovecote's server (worker actors: ``executor_thread_pool_size``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..._endpoints import RPCAccessPolicyBase, expected_exceptions, expose
from ...rpc import _server
from .._executors import executor_name, pool_size
from ..server import MessageHandlingServer

__all__ = ["RPCServer", "expected_exceptions", "expose", "get_rpc_server"]


class RPCServer(MessageHandlingServer):
    """The server :func:`get_rpc_server` returns."""


def get_rpc_server(
    transport: Any, target: Any, endpoints: Iterable[Any], executor: str | None = None,
    serializer: Any = None, access_policy: type[RPCAccessPolicyBase] | RPCAccessPolicyBase
    | None = None, server_cls: type[RPCServer] = RPCServer,
) -> RPCServer:
    """An RPC server for ``target``. ``executor``: ``None``/``"threading"``
    (worker actors), ``"eventlet"`` (deprecated: runs on threads) or
    ``"blocking"``. An endpoint whose ``target`` is not a Target raises
    :class:`TypeError`."""
    if not (isinstance(server_cls, type) and issubclass(server_cls, RPCServer)):
        msg = f"server_cls must subclass dovecote.oslo.rpc.server.RPCServer, not {server_cls!r}"
        raise TypeError(msg)
    policy = access_policy() if isinstance(access_policy, type) else access_policy
    server = _server.get_rpc_server(
        transport, target, endpoints, executor_name(executor), serializer, policy,
        max_workers=pool_size(transport), server_cls=server_cls,
    )
    assert isinstance(server, RPCServer)
    return server
