"""How one dovecote event becomes a standard ``logging`` record, and the
trace ids a line carries while an OpenTelemetry span is current.

The record's message is the event and its fields, readable as they are (what
Python's last-resort handler prints when the application set nothing up)::

    dispatch.failed msg_id=9f2c... method=fail outcome=error error='ValueError: it failed'

and the fields travel as attributes of the record too (``extra``), for
handlers and formatters that write structured lines: ``record.event`` is the
event's name, each field its own attribute. A field whose name a
:class:`logging.LogRecord` already uses (``name``, ``msg``, ``args``,
``module``, ``process``, ``thread``, ``created``, ... and ``message``,
``asctime``, ``taskName``) becomes ``dovecote_<name>`` instead (stdlib would
refuse the record otherwise).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

__all__ = ["RESERVED", "emit", "render", "span_ids"]

#: Attribute names a LogRecord has (or that ``logging`` refuses in ``extra``).
RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}
#: What a field whose name is in :data:`RESERVED` is called on the record.
PREFIX = "dovecote_"
#: Strings shown as they are; others (spaces, quotes, ``=``, empty) quoted.
_PLAIN = re.compile(r"[^\s'\"=]+")


def _show(value: Any) -> str:
    """A field's value as the message shows it."""
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a user object that cannot be shown must not stop a line
        return f"<unprintable {type(value).__name__}>"


def render(event: str, fields: dict[str, Any]) -> str:
    """``event key=value ...``: the message of a record."""
    if not fields:
        return event
    return " ".join([event, *(f"{key}={_show(value)}" for key, value in fields.items())])


def span_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span, hex as OpenTelemetry
    writes them, or ``None``. Nothing is imported: an application that never
    imported ``opentelemetry.trace`` has no current span to look up."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
    except Exception:  # noqa: BLE001 - a broken tracing set-up must not cost a log line
        return None


def emit(logger: logging.Logger, level: int, event: str, fields: dict[str, Any],
         bound: dict[str, Any], stacklevel: int) -> None:
    """Log ``event`` with the call's ``fields`` (first) and the logger's
    ``bound`` ones to ``logger``; ``exc_info`` among them becomes the
    record's. ``stacklevel`` counts the frames above this function up to the
    call in dovecote that logged, so a record names that place."""
    exc_info: Any = None
    merged: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "exc_info":
            exc_info = value
        else:
            merged[key] = value
    for key, value in bound.items():
        if key not in merged and key != "exc_info":
            merged[key] = value
    ids = span_ids()
    if ids is not None:
        merged["trace_id"], merged["span_id"] = ids
    extra = {(PREFIX + key if key in RESERVED else key): value for key, value in merged.items()}
    extra["event"] = event
    logger.log(level, render(event, merged), exc_info=exc_info, extra=extra,
               stacklevel=stacklevel + 1)
