"""What the ``dovecote`` subcommands share: their errors, JSON input,
transports, and what they print (tables, event lines, JSON, progress).

Plain text on purpose: a six-column table and a one-line counter do not
earn a dependency (rich would add three packages, and colour codes a pipe
must strip); ``--json`` is there for anything a script reads.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from ._transport import Transport, get_transport
from ._url import mask_password

__all__ = [
    "PRIORITIES",
    "BadInput",
    "Failed",
    "err",
    "event_line",
    "first_line",
    "json_object",
    "json_value",
    "open_transport",
    "positive",
    "progress",
    "table",
    "to_json",
]

#: The priorities of notifications.
PRIORITIES = ["audit", "debug", "info", "warn", "error", "critical", "sample"]


class BadInput(Exception):
    """Exit status 2: what the user typed cannot work (the text says why)."""


class Failed(Exception):
    """Exit status 1: the other end failed or did not answer."""


def err(text: str) -> None:
    """One line on stderr, passwords masked."""
    print(f"dovecote: {mask_password(text)}", file=sys.stderr, flush=True)


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (a remote one carries its traceback)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def json_object(option: str, text: str) -> dict[str, Any]:
    """``text`` given to ``option`` as a JSON object, else :class:`BadInput`."""
    value = json_value(option, text)
    if not isinstance(value, dict):
        msg = f"{option} must be a JSON object (got {type(value).__name__}), e.g. '{{\"n\": 1}}'"
        raise BadInput(msg)
    return value


def json_value(option: str, text: str) -> Any:
    """``text`` given to ``option`` as JSON, else :class:`BadInput`."""
    try:
        return json.loads(text)
    except ValueError as exc:
        msg = f"{option} is not valid JSON ({exc}): e.g. '{{\"n\": 1}}' or '\"text\"'"
        raise BadInput(msg) from None


def positive(option: str, value: float | None) -> None:
    """Refuse a count or time that is not above zero."""
    if value is not None and not value > 0:
        msg = f"{option} must be more than 0, not {value}"
        raise BadInput(msg)


@contextlib.contextmanager
def open_transport(url: str) -> Iterator[Transport]:
    """A transport to ``url``, cleaned up after use."""
    transport = get_transport(url)
    try:
        yield transport
    finally:
        transport.cleanup()


def to_json(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON; what JSON cannot hold is shown as text."""
    return json.dumps(value, indent=indent, default=str, sort_keys=indent is not None)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """``rows`` as a text table with a header, columns as wide as their widest cell."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


#: Fields an event line shows in its own columns (the rest go as key=value).
_SHOWN = frozenset({"event", "level", "timestamp", "time", "actor", "actor_urn", "kind",
                    "server"})


def event_line(event: dict[str, Any]) -> str:
    """One event as a line: time, level, kind, actor, event name, then its fields."""
    stamp = str(event.get("timestamp", ""))
    clock = stamp[11:23] if len(stamp) >= 23 else stamp
    urn = str(event.get("actor_urn") or "")
    who = f"{event.get('actor', '?')}[{urn[-8:]}]" if urn else str(event.get("actor", "-"))
    fields = " ".join(f"{key}={_field(value)}" for key, value in event.items()
                      if key not in _SHOWN)
    level, kind = str(event.get("level", "")), str(event.get("kind", ""))
    return f"{clock}  {level:<7}  {kind:<10}  {who}  {event.get('event', '')}  {fields}".rstrip()


def _field(value: Any) -> str:
    return value if isinstance(value, str) and " " not in value else json.dumps(value, default=str)


def progress(stream: TextIO = sys.stderr) -> Any:
    """A callback showing a running count on ``stream`` when it is a terminal
    (nothing otherwise, so logs and pipes stay clean)."""
    if not stream.isatty():
        return None

    def show(count: int) -> None:
        stream.write(f"\rreplayed {count} ...")
        stream.flush()

    return show
