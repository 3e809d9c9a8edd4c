"""What a plain ``wait_for(server, ...)`` call counts: the dispatches a
server's event history (``server.events()``) shows ended, since it started or
since a :class:`Mark`. Only dovecote's documented event names are read."""

from __future__ import annotations

import time
from typing import Any

__all__ = [
    "Mark", "ended_in_history", "history_note", "history_server", "mark", "watched_name",
]

#: The events that end one request (``method`` says which) ...
_RPC_ENDS = frozenset({"dispatch.ok", "dispatch.failed"})
#: ... and one notification (a batch's ``dispatch.ok`` counts its ``batch``).
_NOTIFICATION_ENDS = frozenset({
    "dispatch.ok", "notification.requeued", "notification.dead_lettered",
    "notification.released"})


def watched_name(watched: Any) -> str:
    """``server 'name'``, ``endpoint actor Class`` or ``endpoint Class``, for texts."""
    from .._endpoints import actor_ref_of
    from ..actors import MessageHandlingServer

    if isinstance(watched, MessageHandlingServer):
        return f"server {watched.name!r}"
    ref = actor_ref_of(watched)
    if ref is not None:
        return f"endpoint actor {ref.actor_class.__name__}"
    return f"endpoint {type(watched).__name__}"


class Mark:
    """A moment in a server's life: ``wait_for(server, ..., since=mark)`` counts
    only what the server handled after it. Made by :func:`mark`."""

    __slots__ = ("server", "time")

    def __init__(self, server: Any, when: float) -> None:
        self.server = server
        self.time = when

    def __repr__(self) -> str:
        return f"<Mark of {watched_name(self.server)} at {self.time:.6f}>"


def mark(server: Any) -> Mark:
    """Now, for ``server``: a later plain ``wait_for(server, ..., since=mark)``
    counts only what the server handled after this call::

        mark = dovecote.testing.mark(server)
        client.cast({}, "add", a=1, b=2)
        wait_for(server, "add", since=mark)
    """
    from ..actors import MessageHandlingServer

    if not isinstance(server, MessageHandlingServer):
        raise TypeError(f"mark() takes a server (from get_rpc_server or "
                        f"get_notification_listener), not {type(server).__name__}")
    return Mark(server, time.time())


def history_server(watched: Any, method: str | None, since: Mark | None) -> Any:
    """The server a plain call reads the history of, or ``TypeError`` saying why not."""
    from ..actors import MessageHandlingServer

    if not isinstance(watched, MessageHandlingServer):
        raise TypeError(
            f"wait_for({watched_name(watched)}, ...) as a plain call counts a server's event "
            "history: pass the server, or write `with wait_for(endpoint, ...):` around the send")
    if since is not None and since.server is not watched:
        raise ValueError(
            f"since={since!r} is a mark of another server than {watched_name(watched)}")
    if not watched.event_history:
        raise TypeError(
            f"{watched_name(watched)} keeps no event history (event_history=0): a plain "
            "wait_for() has nothing to count; write `with wait_for(server, ...):` around the send")
    handler = watched.handler
    if handler.kind != "rpc" and method is not None and [_priority(method)] != list(
            handler.priorities):
        raise TypeError(
            f"wait_for({watched_name(watched)}, {method!r}) as a plain call cannot tell "
            "notification priorities apart (the event history does not record them): write "
            f"`with wait_for(listener, {method!r}):` around the send, or a plain "
            "wait_for(listener) for notifications of any priority")
    return watched


def _priority(name: str) -> str:
    lowered = name.lower()
    return "warn" if lowered == "warning" else lowered


def ended_in_history(server: Any, events: list[dict[str, Any]], method: str | None,
                     count: int) -> list[tuple[str, str, str, None, None, int, float]]:
    """The first dispatches in ``events`` that ended a request (to ``method``, by
    the name the request gave) or a notification, until ``count`` messages:
    ``(kind, name, outcome, result, error, count, seconds)`` of each."""
    rpc = server.handler.kind == "rpc"
    kinds = _RPC_ENDS if rpc else _NOTIFICATION_ENDS
    found: list[tuple[str, str, str, None, None, int, float]] = []
    seen = 0
    for event in events:
        if seen >= count or event.get("event") not in kinds:
            continue
        if rpc:
            name = event.get("method")
            if not isinstance(name, str) or (method is not None and name != method):
                continue
        elif event.get("event") == "dispatch.ok" and not ("event_type" in event
                                                          or "batch" in event):
            continue
        else:
            name = _priority(method) if method is not None else "notification"
        batch = event.get("batch")
        number = batch if isinstance(batch, int) and batch > 0 else 1
        duration = event.get("duration_ms")
        seconds = duration / 1000 if isinstance(duration, (int, float)) else 0.0
        found.append(("rpc" if rpc else "notification", name, str(event.get("outcome", "")),
                      None, None, number, seconds))
        seen += number
    return found


def history_note(server: Any, events: list[dict[str, Any]]) -> str:
    """Why a plain call may have counted too few: the history keeps only the
    last ``event_history`` events of each actor."""
    per_actor: dict[Any, int] = {}
    for event in events:
        per_actor[event.get("actor_urn")] = per_actor.get(event.get("actor_urn"), 0) + 1
    if per_actor and max(per_actor.values()) >= server.event_history:
        return (f"; the server keeps the last {server.event_history} events of each actor "
                "and some were dropped: take a mark just before the send, or raise "
                "event_history")
    return ""
