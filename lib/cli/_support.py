"""What the ``dovecote`` subcommands share: their errors, JSON input,
transports, and what they print (tables, event lines, JSON, progress).

Plain text on purpose: a six-column table and a one-line counter do not
earn a dependency (rich would add three packages, and colour codes a pipe
must strip); ``--json`` is there for anything a script reads.

Much of what the commands print comes from peers (event types, publisher
ids, dead-letter reasons, a remote server's events and errors, log lines):
every human-readable line goes out through :func:`show` or :func:`err`,
which escape what a terminal would act on instead of showing
(:func:`printable`). JSON output is exact: JSON escapes it already.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import unicodedata
from typing import Any, TextIO

from .._url import mask_password

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_SECONDS",
    "PRIORITIES",
    "BadInput",
    "Failed",
    "err",
    "event_line",
    "first_line",
    "json_object",
    "json_value",
    "positive",
    "printable",
    "progress",
    "seconds",
    "show",
    "status",
    "table",
    "to_json",
]

#: The priorities of notifications.
PRIORITIES = ["audit", "debug", "info", "warn", "error", "critical", "sample"]

#: How deeply ``--args``, ``--ctxt`` and ``--payload`` may nest: far beyond any
#: real argument, and far below the ~1000 levels at which Python's JSON
#: encoder and a server's decoder give up, so what is accepted can be sent.
MAX_JSON_DEPTH = 200

#: The longest ``--timeout`` (seconds): a day. Longer is a mistake, and
#: infinity cannot be sent (a call's timeout is its message's expiry).
MAX_SECONDS = 86400.0


class BadInput(Exception):
    """Exit status 2: what the user typed cannot work (the text says why)."""


class Failed(Exception):
    """Exit status 1: the other end failed or did not answer."""


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on rather than show
    written as an escape (``\\x1b``, ``\\r``, ``\\n``, ``\\u202e``): C0 and C1
    controls (ANSI sequences, carriage returns, newlines, tabs), bidi
    overrides and other format characters, line and paragraph separators,
    lone surrogates, private-use and unassigned code points. Spaces stay."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or unicodedata.category(char) == "Zs" else _escape(char)
        for char in text)


def show(line: str = "", *, stream: TextIO | None = None) -> None:
    """Print one line of output (stdout unless ``stream``), escaped with
    :func:`printable`: whatever a peer put in it stays on this line."""
    print(printable(line), file=stream or sys.stdout, flush=True)


def err(text: str) -> None:
    """One line on stderr, passwords masked, escaped with :func:`printable`."""
    show(f"dovecote: {mask_password(text)}", stream=sys.stderr)


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


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"{text} is too large for a number"
        raise ValueError(msg)
    return value


def json_value(option: str, text: str) -> Any:
    """``text`` given to ``option`` as JSON, else :class:`BadInput`: valid
    JSON text (no ``NaN``, ``Infinity`` or numbers out of range) nested at
    most :data:`MAX_JSON_DEPTH` levels deep."""
    example = "e.g. '{\"n\": 1}' or '\"text\"'"
    try:
        text.encode("utf-8")
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        value = None  # nested deeper than the parser goes: refused below
        depth = MAX_JSON_DEPTH + 1
    except ValueError as exc:  # UnicodeEncodeError too: not text (undecodable bytes)
        msg = f"{option} is not valid JSON ({first_line(exc)}): {example}"
        raise BadInput(msg) from None
    else:
        depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        msg = f"{option} nests more than {MAX_JSON_DEPTH} levels deep: flatten it"
        raise BadInput(msg)
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (lists and objects), counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                stack.extend((inner, level + 1)
                             for inner in (item.values() if isinstance(item, dict) else item))
    return deepest


def positive(option: str, value: float | None) -> None:
    """Refuse a count or time that is not above zero."""
    if value is not None and not value > 0:
        msg = f"{option} must be more than 0, not {value}"
        raise BadInput(msg)


def seconds(option: str, value: float | None) -> None:
    """Refuse a time that is not a number of seconds above 0 and at most
    :data:`MAX_SECONDS` (``inf``, ``nan``, ``-1`` and ``0`` included)."""
    if value is not None and not 0 < value <= MAX_SECONDS:  # false for NaN too
        msg = f"{option} must be more than 0 and at most {MAX_SECONDS:g} seconds, not {value}"
        raise BadInput(msg)


def status(event: str, text: str, *, as_json: bool, **fields: Any) -> None:
    """A line about the command itself on stderr (``serving ...``, ``listening
    to ...``): ``text`` for a human, or with ``as_json`` a JSON object like
    the log lines around it (``event``, ``level``, ``timestamp``, ``fields``
    and ``message``), so every line on stderr parses."""
    if not as_json:
        show(text, stream=sys.stderr)
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(to_json({"event": event, "level": "info", "timestamp": stamp, **fields,
                   "message": text}), file=sys.stderr, flush=True)


def to_json(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON; what JSON cannot hold is shown as text."""
    return json.dumps(value, indent=indent, default=str, sort_keys=indent is not None)


def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """``rows`` as the lines of a text table with a header, columns as wide as
    their widest cell (escaped with :func:`printable`, so they line up)."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return [line.rstrip() for line in lines]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(str(value))


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
