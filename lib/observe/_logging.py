"""How dovecote logs: quiet by default, a history per actor, and an opt-in
set-up for applications that want JSON lines.

* dovecote never configures structlog or ``logging``. When the application
  has configured structlog, dovecote's lines go through that configuration,
  unchanged. When it has not, they go to a logger of dovecote's own that
  writes WARNING and above to stderr and drops the rest at the cost of a flag
  test (:func:`get_logger`).
* Every actor keeps its last events in a bounded ring (:class:`History`),
  whatever the logging configuration: event, level, time and fields (never
  payloads, arguments or credentials: dovecote's events carry none). An
  actor logs through an :class:`ActorLog`, which records and logs in one
  call, and builds nothing for a level nobody wants.
"""

from __future__ import annotations

import collections
import datetime
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import structlog

__all__ = [
    "ActorLog",
    "History",
    "actor_log",
    "configure_logging",
    "get_logger",
    "set_actor_log",
]

_DEBUG, _INFO = logging.DEBUG, logging.INFO
_now = time.time


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: dovecote's own logger while the application has not configured structlog.
_QUIET = structlog.wrap_logger(
    structlog.PrintLogger(file=_Stderr()),  # type: ignore[arg-type]
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.dev.ConsoleRenderer(colors=False),
    ],
)


class _Lazy:
    """A module's logger (and what ``bind`` makes of it): decides whether the
    application has configured structlog when it first logs after that, not
    when it was created, so a transport or server made before the
    application's logging set-up still logs through it."""

    __slots__ = ("_fields", "_name", "_target")

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        self._name = name
        self._fields = fields or {}
        self._target: Any = None  # the application's bound logger, once configured

    def _resolve(self) -> Any:
        target = self._target
        if target is not None:
            return target
        if not structlog.is_configured():
            return _QUIET.bind(**self._fields) if self._fields else _QUIET
        self._target = structlog.get_logger(self._name).bind(**self._fields)
        return self._target

    def bind(self, **fields: Any) -> _Lazy:
        return _Lazy(self._name, {**self._fields, **fields})

    def __getattr__(self, method: str) -> Any:
        return getattr(self._resolve(), method)


def get_logger(name: str) -> Any:
    """dovecote's logger ``name``: the application's structlog if it
    configured structlog, else a quiet one (WARNING and above, to stderr)."""
    return _Lazy(name)


def _enabled(log: Any, level: int) -> bool:
    """Whether ``log`` would emit ``level`` (structlog's filtering loggers and
    stdlib ones say so; for others, assume it would)."""
    check = getattr(log, "is_enabled_for", None) or getattr(log, "isEnabledFor", None)
    if check is None:
        return True
    try:
        return bool(check(level))
    except Exception:  # noqa: BLE001 - an odd logger: log everything to it
        return True


class History:
    """The last ``size`` events of one actor (a ring: old ones drop out)."""

    __slots__ = ("identity", "ring")

    def __init__(self, size: int, identity: dict[str, Any]) -> None:
        # (time, level, event, fields), or (time, level, event, keys, values):
        # the per-message events of the dispatch path, kept without a dict.
        self.ring: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=size)
        #: ``actor``, ``actor_urn``, ``kind``, ``server``: added to every record.
        self.identity = identity

    def add(self, level: str, event: str, fields: dict[str, Any]) -> None:
        """Record an event (without ``exc_info``: a traceback is not kept)."""
        if "exc_info" in fields:
            fields = {key: value for key, value in fields.items() if key != "exc_info"}
        self.ring.append((_now(), level, event, fields))

    def records(self) -> list[dict[str, Any]]:
        """The events as dicts, oldest first."""
        return [_record(entry[0], entry[1], entry[2],
                        entry[3] if len(entry) == 4 else dict(zip(entry[3], entry[4], strict=True)),
                        self.identity)
                for entry in list(self.ring)]


def _record(when: float, level: str, event: str, fields: dict[str, Any],
            identity: dict[str, Any]) -> dict[str, Any]:
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat()
    return {**fields, **identity, "event": event, "level": level, "timestamp": stamp,
            "time": when}


class ActorLog:
    """What an actor logs: each event goes to its :class:`History` (if it
    keeps one) and to structlog if that level is enabled there. Callers test
    :attr:`records_debug` before building fields for a debug event."""

    __slots__ = ("_debug", "_info", "_ring", "history", "log", "records_debug")

    def __init__(self, log: Any, history: History | None = None) -> None:
        self.log = log
        self.history = history
        # The ring itself: a debug event on the dispatch path is one append.
        self._ring = None if history is None else history.ring
        self._debug = _enabled(log, _DEBUG)
        self._info = _enabled(log, _INFO)
        #: Whether a debug event goes anywhere (a plain attribute: it is read
        #: for every message).
        self.records_debug = self._debug or self._ring is not None

    @property
    def logs_debug(self) -> bool:
        """Whether structlog takes debug lines (the history aside)."""
        return self._debug

    def bind(self, history: History | None = None, **fields: Any) -> ActorLog:
        """The same log with ``fields`` bound (and another history, if given)."""
        return ActorLog(self.log.bind(**fields), history or self.history)

    def debug(self, event: str, **fields: Any) -> None:
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, fields))
        if self._debug:
            self.log.debug(event, **fields)

    def debug_fields(self, event: str, fields: dict[str, Any]) -> None:
        """:meth:`debug` with the fields as a dict (kept as it is: one dict
        fewer on the dispatch path)."""
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, fields))
        if self._debug:
            self.log.debug(event, **fields)

    def debug_values(self, event: str, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """:meth:`debug` with the fields as names and values: the cheapest
        record, for the events every message makes."""
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, keys, values))
        if self._debug:
            self.log.debug(event, **dict(zip(keys, values, strict=True)))

    def info(self, event: str, **fields: Any) -> None:
        if self._ring is not None:
            self._ring.append((_now(), "info", event, fields))
        if self._info:
            self.log.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        if self.history is not None:
            self.history.add("warning", event, fields)
        self.log.warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        if self.history is not None:
            self.history.add("error", event, fields)
        self.log.error(event, **fields)


_thread = threading.local()


def set_actor_log(log: ActorLog | None) -> None:
    """Called by an actor in its own thread (``None`` when it stops): what a
    handler or driver logs in this thread then carries that actor's identity
    and lands in its history."""
    _thread.log = log


def actor_log(default: Any) -> Any:
    """The log of the actor running in this thread, else ``default``."""
    return getattr(_thread, "log", None) or default


def configure_logging(
    *, level: str | int = "info", path: str | Path | None = None, stream: TextIO | None = None,
) -> None:
    """Configure structlog (globally, for the whole application) to write one
    JSON object per line with a timestamp and level, to ``path`` (appended),
    ``stream``, or stderr; lines below ``level`` are dropped cheaply."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        msg = f"unknown log level {level!r}; use debug, info, warning or error"
        raise ValueError(msg)  # noqa: TRY004 - a bad value, whatever its type
    if path is not None:
        stream = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as logging
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
