"""The control endpoint: a running RPC server inspected from outside.

Served in namespace ``dovecote.control`` (version 1.0) by servers built with
``get_rpc_server(..., control=True)`` (the default), with oslo.messaging's
``oslo_rpc_server_ping`` beside it, as its ``rpc_ping_enabled`` servers do.
It answers like any endpoint, so anyone who may call the service may inspect
it; it never returns payloads, arguments, credentials, error texts (only
their exception class) or a password (transport URLs are masked).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._target import Target

if TYPE_CHECKING:
    from ._view import ServerView

__all__ = [
    "CONTROL_NAMESPACE", "ControlEndpoint", "PingEndpoint", "is_control_endpoint",
    "public_event",
]

CONTROL_NAMESPACE = "dovecote.control"
#: The most events one ``events`` call returns.
MAX_EVENTS = 1000
#: Fields of an event the control endpoint shows: identities, ids, counts,
#: outcomes, timings. Not ``error``, ``reason`` or ``note``: their text may
#: quote what a peer or an endpoint put in an exception.
_PUBLIC = frozenset({
    "event", "level", "timestamp", "time", "actor", "actor_urn", "kind", "server", "listener",
    "transport", "msg_id", "msg_ids", "unique_id", "method", "event_type", "outcome", "stage",
    "duration_ms", "count", "batch", "attempt", "delay_s", "in_flight", "queue", "redeliveries",
    "generation", "elapsed_ms", "spent_ms",
})
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)\(")


def public_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as the control endpoint shows it (``error`` as its class only)."""
    shown = {key: value for key, value in event.items() if key in _PUBLIC}
    error = event.get("error")
    if isinstance(error, str):
        found = _EXCEPTION.match(error)
        shown["error_type"] = found.group(1) if found else "error"
    return shown


class ControlEndpoint:
    """``ping``, ``actors`` and ``events`` of the server it belongs to."""

    target = Target(namespace=CONTROL_NAMESPACE, version="1.0")

    def __init__(self) -> None:
        self.server: ServerView | None = None  # set once the server exists

    def ping(self, ctxt: Any) -> str:
        """``"pong"``: the server is up and answering."""
        return "pong"

    def actors(self, ctxt: Any) -> list[dict[str, Any]]:
        """The server's actors (``server.actors()``)."""
        return [] if self.server is None else self.server.actors()

    def events(
        self, ctxt: Any, *, actor: str | None = None, kind: str | None = None,
        msg_id: str | None = None, since: float | str | None = None, limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The server's recent events (``server.events()``), at most ``MAX_EVENTS``."""
        if self.server is None:
            return []
        limit = max(1, min(int(limit), MAX_EVENTS))
        return [public_event(event) for event in self.server.events(
            actor=actor, kind=kind, msg_id=msg_id, since=since, limit=limit)]


class PingEndpoint:
    """oslo.messaging's ping (``rpc_ping_enabled``): ``oslo_rpc_server_ping``."""

    def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        return "pong"


def is_control_endpoint(endpoint: Any) -> bool:
    """Whether ``endpoint`` is one the server added (``control=True``): it must
    never change what a caller of the application's endpoints gets."""
    return isinstance(endpoint, (ControlEndpoint, PingEndpoint))
