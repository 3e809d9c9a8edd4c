"""``oslo_messaging.rpc.client``: an :class:`RPCClient` whose defaults come
from the transport's configuration (``rpc_response_timeout``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import RemoteError, RPCVersionCapError
from ...rpc import _client
from .._errors import ClientSendError
from ..transport import TransportOptions

__all__ = ["ClientSendError", "RPCClient", "RPCVersionCapError", "RemoteError",
           "get_rpc_client"]

_UNSET: Any = _client._NOT_SET


def _options(value: TransportOptions | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(value, TransportOptions):
        return value.as_dict()
    return value


class RPCClient(_client.RPCClient):
    """dovecote's :class:`~dovecote.RPCClient` with oslo.messaging's
    constructor: ``timeout`` defaults to ``[DEFAULT] rpc_response_timeout``
    and ``transport_options`` may be a :class:`TransportOptions`."""

    def __init__(
        self, transport: Any, target: Any, timeout: float | None = None,
        version_cap: str | None = None, serializer: Any = None, retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: TransportOptions | Mapping[str, Any] | None = None,
        _manual_load: bool = True,
    ) -> None:
        if timeout is None:
            conf = getattr(transport, "conf", None)
            timeout = getattr(conf, "rpc_response_timeout", None) if conf is not None else None
        super().__init__(transport, target, timeout, version_cap, serializer, retry,
                         call_monitor_timeout, _options(transport_options))

    def prepare(
        self, exchange: Any = _UNSET, topic: Any = _UNSET, namespace: Any = _UNSET,
        version: Any = _UNSET, server: Any = _UNSET, fanout: Any = _UNSET,
        timeout: Any = _UNSET, version_cap: Any = _UNSET, retry: Any = _UNSET,
        call_monitor_timeout: Any = _UNSET, transport_options: Any = _UNSET,
    ) -> RPCClient:
        """A client sharing this one's transport, with the given options replaced."""
        if transport_options is not _UNSET:
            transport_options = _options(transport_options)
        clone = super().prepare(exchange, topic, namespace, version, server, fanout, timeout,
                                version_cap, retry, call_monitor_timeout, transport_options)
        assert isinstance(clone, RPCClient)
        return clone


def get_rpc_client(transport: Any, target: Any, client_cls: type[RPCClient] = RPCClient,
                   **kwargs: Any) -> RPCClient:
    """An RPC client (``client_cls`` as in oslo.messaging)."""
    return client_cls(transport, target, **kwargs)
