"""The control endpoint: a running RPC server inspected from outside.

Served in namespace ``dovecote.control`` (version 1.1: ``ping``, ``actors``,
``events`` since 1.0; ``info``, ``describe`` and ``ping(who=True)`` since
1.1) by servers built with ``get_rpc_server(..., control=True)`` (the
default), with oslo.messaging's ``oslo_rpc_server_ping`` beside it, as its
``rpc_ping_enabled`` servers do. It answers like any endpoint, so anyone who
may call the service may inspect it; it never returns payloads, argument
values, credentials, error texts (only their exception class) or a password
(transport URLs are masked).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import inspect
import os
import re
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from .._target import Target

if TYPE_CHECKING:
    from ._view import ServerView

__all__ = [
    "CONTROL_NAMESPACE", "CONTROL_VERSION", "ControlEndpoint", "Exposed", "PingEndpoint",
    "dovecote_version", "is_control_endpoint", "public_event",
]

CONTROL_NAMESPACE = "dovecote.control"
#: The control endpoint's version: 1.1 added ``info``, ``describe`` and
#: ``ping(who=True)`` (a 1.0 server answers a 1.1 call ``UnsupportedVersion``).
CONTROL_VERSION = "1.1"
#: The longest method summary ``describe`` returns (the docstring's first line).
MAX_SUMMARY = 200
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


class Exposed(NamedTuple):
    """One application endpoint as the dispatcher routes to it: what
    ``describe`` shows (the dispatcher builds these, after the access policy)."""

    #: The endpoint's class name (an actor endpoint's actor class).
    name: str
    target: Target
    #: The methods callers may reach, by name: bound methods of a plain
    #: endpoint, unbound functions of an actor's class.
    methods: dict[str, Callable[..., Any]]
    actor: bool


def dovecote_version() -> str:
    """The installed dovecote's version (``unknown`` from a bare source tree)."""
    try:
        return importlib.metadata.version("dovecote")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class ControlEndpoint:
    """``ping``, ``actors``, ``events``, ``info`` and ``describe`` of the
    server it belongs to."""

    target = Target(namespace=CONTROL_NAMESPACE, version=CONTROL_VERSION)

    def __init__(self) -> None:
        self.server: ServerView | None = None  # set once the server exists
        #: The application's endpoints (set by ``get_rpc_server``).
        self.exposed: list[Exposed] = []
        self._created = time.time()

    def _identity(self) -> dict[str, Any]:
        return {"server": None if self.server is None else self.server.name,
                "host": socket.gethostname(), "pid": os.getpid()}

    def ping(self, ctxt: Any, *, who: bool = False) -> str | dict[str, Any]:
        """``"pong"``: the server is up and answering; with ``who``, which
        server answered: ``{"pong": true, "server", "host", "pid"}``."""
        return {"pong": True, **self._identity()} if who else "pong"

    def info(self, ctxt: Any) -> dict[str, Any]:
        """Who this server is: ``server`` (its name), ``host``, ``pid``,
        ``version`` (dovecote's), ``started`` (ISO 8601, when
        ``get_rpc_server`` built it) and ``uptime_s`` since, and ``listeners``
        (``target`` and ``transport``, password masked)."""
        listeners = [] if self.server is None else [
            {"target": record.get("target"), "transport": record.get("transport")}
            for record in self.server.actors() if record.get("kind") == "listener"]
        started = datetime.datetime.fromtimestamp(self._created, datetime.UTC)
        return {**self._identity(), "version": dovecote_version(),
                "started": started.isoformat(timespec="seconds"),
                "uptime_s": round(time.time() - self._created, 3), "listeners": listeners}

    def describe(self, ctxt: Any) -> dict[str, Any]:
        """The application's endpoints: for each, its class name, namespace,
        version and the methods its access policy lets callers call, with
        their parameters (name, required or not; no defaults, no values) and
        the first line of their docstring. The control endpoints are left out."""
        return {**self._identity(), "endpoints": [
            {"endpoint": exposed.name, "namespace": exposed.target.namespace,
             "legacy_namespaces": list(exposed.target.legacy_namespaces or ()),
             "version": exposed.target.version or "1.0", "actor": exposed.actor,
             "methods": [_method(name, func, skip=2 if exposed.actor else 1)
                         for name, func in sorted(exposed.methods.items())]}
            for exposed in self.exposed]}

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


def _method(name: str, func: Callable[..., Any], *, skip: int) -> dict[str, Any]:
    """A method as ``describe`` shows it: its parameters after the first
    ``skip`` (the context, and ``self`` of an actor's function), or ``None``
    when they cannot be read, and its docstring's first line."""
    doc = (inspect.getdoc(func) or "").strip().splitlines()
    return {"name": name, "parameters": _parameters(func, skip),
            "summary": doc[0][:MAX_SUMMARY] if doc else None}


def _parameters(func: Callable[..., Any], skip: int) -> list[dict[str, Any]] | None:
    """Each parameter a caller can send (by name: RPC arguments are keyword
    arguments): ``name``, ``required``, and ``any`` for ``**kwargs``."""
    try:
        params = list(inspect.signature(func).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    shown: list[dict[str, Any]] = []
    for param in params:
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
            continue  # cannot be sent by name
        if param.kind is param.VAR_KEYWORD:
            shown.append({"name": param.name, "required": False, "any": True})
        else:
            shown.append({"name": param.name, "required": param.default is param.empty})
    return shown


class PingEndpoint:
    """oslo.messaging's ping (``rpc_ping_enabled``): ``oslo_rpc_server_ping``."""

    def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        return "pong"


def is_control_endpoint(endpoint: Any) -> bool:
    """Whether ``endpoint`` is one the server added (``control=True``): it must
    never change what a caller of the application's endpoints gets."""
    return isinstance(endpoint, (ControlEndpoint, PingEndpoint))
