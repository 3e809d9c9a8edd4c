"""``dovecote logs``: filter the JSON-line logs ``configure_logging`` writes,
or follow one message through the actors (``--trace``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..observe._history import about, as_epoch, trace_events
from ._support import BadInput, event_line, show, to_json

__all__ = ["filter_log", "log_trace", "logs", "read_log", "trace_lines"]


def read_log(path: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-line log file (other lines are skipped)."""
    try:
        handle = Path(path).open(encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise BadInput(msg) from None
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "event" in record:
                yield record


def _time(record: dict[str, Any]) -> float | None:
    try:
        return as_epoch(str(record["timestamp"]))
    except (KeyError, ValueError, TypeError):
        return None


def filter_log(
    records: Iterable[dict[str, Any]], *, actor: str | None, event: str | None,
    msg_id: str | None, since: str | None,
) -> Iterator[dict[str, Any]]:
    """The records of one actor (URN or class name), one event name, one
    message, after ``since`` (ISO 8601)."""
    try:
        after = as_epoch(since)
    except ValueError:
        msg = f"--since {since!r} is not an ISO 8601 time: write e.g. 2026-11-29T10:00:00"
        raise BadInput(msg) from None
    for record in records:
        if actor is not None and actor not in (record.get("actor_urn"), record.get("actor")):
            continue
        if event is not None and record.get("event") != event:
            continue
        if msg_id is not None and not about(record, msg_id):
            continue
        if after is not None and ((when := _time(record)) is None or when <= after):
            continue
        yield record


def log_trace(records: Iterable[dict[str, Any]], msg_id: str) -> list[dict[str, Any]]:
    """One message's steps from log records, as ``server.trace()`` gives them."""
    steps = [{**record, "time": when} for record in records
             if about(record, msg_id) and (when := _time(record)) is not None]
    steps.sort(key=lambda record: record["time"])
    return trace_events(steps)


def trace_lines(steps: list[dict[str, Any]]) -> list[str]:
    """A trace as text: elapsed time, time spent at the step, actor, event."""
    lines = []
    for step in steps:
        spent = step.get("spent_ms")
        urn = str(step.get("actor_urn") or "")
        who = f"{step.get('actor', '?')}[{urn[-8:]}]" if urn else str(step.get("actor", "-"))
        lines.append(f"+{step.get('elapsed_ms', 0):>9.3f} ms  "
                     f"{'' if spent is None else f'{spent:.3f} ms':>12}  "
                     f"{who:<32}  {step.get('event', '')}")
    return lines


def logs(args: argparse.Namespace) -> int:
    """Print the records of ``args.file`` that pass the filters, or one trace."""
    records = read_log(args.file)
    if args.trace:
        steps = log_trace(records, args.trace)
        if not steps:
            msg = f"no line of {args.file} is about message {args.trace!r}"
            raise BadInput(msg)
        for line in ([to_json(s) for s in steps] if args.json else trace_lines(steps)):
            show(line)  # JSON is ASCII: unchanged
        return 0
    for record in filter_log(records, actor=args.actor, event=args.event, msg_id=args.msg_id,
                             since=args.since):
        show(to_json(record) if args.json else event_line(record))
    return 0
