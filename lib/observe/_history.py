"""Reading the actors' event histories: ``server.events()`` and ``server.trace()``."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._logging import History

__all__ = ["about", "as_epoch", "query_events", "trace_events"]


def as_epoch(value: float | str | datetime.datetime | None) -> float | None:
    """``since`` as seconds since the epoch: a number, an ISO 8601 text or a datetime."""
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


def about(record: dict[str, Any], msg_id: str) -> bool:
    """Whether an event (or a log record) is about message ``msg_id``."""
    ids = record.get("msg_ids")
    return record.get("msg_id") == msg_id or (isinstance(ids, list) and msg_id in ids)


def query_events(
    histories: Iterable[History], *, actor: str | None = None, kind: str | None = None,
    msg_id: str | None = None, since: float | str | datetime.datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The events of ``histories`` in time order: of one actor (its URN) or
    one actor class (``WorkerActor``), of one kind of actor, about one
    message, after ``since``; the last ``limit``."""
    after = as_epoch(since)
    found: list[dict[str, Any]] = []
    for history in histories:
        identity = history.identity
        if actor is not None and actor not in (identity.get("actor_urn"), identity.get("actor")):
            continue
        if kind is not None and identity.get("kind") != kind:
            continue
        for record in history.records():
            if after is not None and record["time"] <= after:
                continue
            if msg_id is not None and not about(record, msg_id):
                continue
            found.append(record)
    found.sort(key=lambda record: record["time"])
    return found[-limit:] if limit else found


def trace_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One message's way through the actors: its events in time order, each
    with ``elapsed_ms`` since the first and ``spent_ms`` until the next (the
    time the message spent at that step, in that actor)."""
    if not events:
        return []
    first = events[0]["time"]
    steps = []
    for index, event in enumerate(events):
        following = events[index + 1]["time"] if index + 1 < len(events) else None
        steps.append({
            **event, "elapsed_ms": round((event["time"] - first) * 1000, 3),
            "spent_ms": None if following is None else round((following - event["time"]) * 1000,
                                                             3),
        })
    return steps
