"""How dovecote logs: through the application's ``logging`` set-up (or its
structlog one), with a history per actor.

* dovecote never configures ``logging`` or structlog. Each event goes to the
  standard library logger of the module that logs it, named without private
  underscores (``dovecote.rpc.server``, ``dovecote.notify.handler``,
  ``dovecote.drivers.kombu.listener``, ...; an actor's own events:
  ``dovecote.actors``), as one readable line whose fields also travel as
  record attributes (see :mod:`._stdlog`). Unconfigured, Python's last-resort
  handler writes WARNING and above to stderr. ``basicConfig``, ``dictConfig``,
  ``setLevel`` and ``logging.disable`` take effect at once, for loggers made
  before too: each check asks the logger (``isEnabledFor``, which ``logging``
  caches) when a line is about to be made.
* An application that configured structlog gets the events as structlog
  events instead, through its configuration, unchanged.
* While an OpenTelemetry span is current, lines carry ``trace_id`` and
  ``span_id``.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import structlog

from . import _stdlog

__all__ = [
    "ActorLog",
    "History",
    "Logger",
    "actor_log",
    "configure_logging",
    "get_logger",
    "logger_name",
    "set_actor_log",
]

_DEBUG, _INFO, _WARNING, _ERROR, _CRITICAL = (
    logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
_METHOD = {_DEBUG: "debug", _INFO: "info", _WARNING: "warning", _ERROR: "error",
           _CRITICAL: "critical"}
_now = time.time


class _AskStructlog:
    """structlog's configuration as attributes, asked through its API (see below)."""

    @property
    def is_configured(self) -> bool:
        return structlog.is_configured()

    @property
    def default_wrapper_class(self) -> Any:
        return structlog.get_config()["wrapper_class"]

    @property
    def logger_factory(self) -> Any:
        return structlog.get_config()["logger_factory"]

    @property
    def default_processors(self) -> Any:
        return structlog.get_config()["processors"]


#: Whether the application configured structlog is asked at every line (it may
#: configure, or reset, structlog after dovecote's loggers were made): read
#: from structlog's own configuration object, what ``structlog.is_configured()``
#: returns, without a call, as the dispatch path asks four times per message.
try:
    from structlog._config import _CONFIG as _STRUCTLOG
except ImportError:  # pragma: no cover - another structlog: ask through its API
    _STRUCTLOG = _AskStructlog()  # type: ignore[assignment]


def _setup_now() -> tuple[Any, Any, Any]:
    """What a bound structlog logger is assembled from. A logger bound under one
    set-up keeps it, so when the application configures structlog again (another
    level filter, processors, or ``reset_defaults``) dovecote's loggers bind anew."""
    config = _STRUCTLOG
    return config.default_wrapper_class, config.logger_factory, config.default_processors


def _level_check(log: Any) -> Callable[[int], bool] | None:
    """How to ask a structlog logger whether it takes a level (``None``: it
    cannot say, so it takes everything)."""
    check = getattr(log, "is_enabled_for", None) or getattr(log, "isEnabledFor", None)
    return check if callable(check) else None


class Logger:
    """dovecote's logger ``name``, with bound fields. Whether a line goes to
    the standard library or to the application's structlog is decided at each
    line, so a transport or server made before the application's logging
    set-up logs through it. The stdlib logger itself is looked up when first
    needed (a line, or an actor's log), so a ``dictConfig`` done after
    ``import dovecote`` does not count dovecote's loggers among the "existing"
    ones it disables."""

    __slots__ = ("_check", "_fields", "_setup", "_std", "_target", "name")

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        self.name = name
        self._fields = fields or {}
        self._std: logging.Logger | None = None
        self._target: Any = None  # the application's structlog logger, once used
        self._check: Callable[[int], bool] | None = None
        self._setup: tuple[Any, Any, Any] = (None, None, None)  # what _target was bound under

    def _stdlib(self) -> logging.Logger:
        std = self._std = logging.getLogger(self.name)
        return std

    def stdlib(self) -> logging.Logger:
        """The standard library logger of this name."""
        return self._std or self._stdlib()

    def _structlog(self) -> Any:
        """The application's structlog logger, bound again when its set-up changed."""
        target = self._target
        setup = self._setup
        config = _STRUCTLOG
        if (target is not None and setup[0] is config.default_wrapper_class
                and setup[1] is config.logger_factory and setup[2] is config.default_processors):
            return target
        self._setup = _setup_now()
        target = self._target = structlog.get_logger(self.name).bind(**self._fields)
        self._check = _level_check(target)
        return target

    def enabled(self, level: int) -> bool:
        """Whether a line at ``level`` goes anywhere, asked now (cheap: the
        stdlib logger caches its answer until its configuration changes)."""
        if not _STRUCTLOG.is_configured:
            return (self._std or self._stdlib()).isEnabledFor(level)
        self._structlog()
        check = self._check
        return check is None or check(level)

    def emit(self, level: int, event: str, fields: dict[str, Any], stacklevel: int = 1) -> None:
        """Log ``event`` at ``level`` (the caller asked :meth:`enabled`);
        ``stacklevel`` counts the frames above this one up to dovecote's call."""
        if not _STRUCTLOG.is_configured:
            _stdlog.emit(self._std or self._stdlib(), level, event, fields, self._fields,
                         stacklevel + 1)
            return
        target = self._structlog()
        ids = _stdlog.span_ids()
        if ids is not None:
            fields = {**fields, "trace_id": ids[0], "span_id": ids[1]}
        getattr(target, _METHOD.get(level, "error"))(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        if self.enabled(_DEBUG):
            self.emit(_DEBUG, event, fields, 2)

    def info(self, event: str, **fields: Any) -> None:
        if self.enabled(_INFO):
            self.emit(_INFO, event, fields, 2)

    def warning(self, event: str, **fields: Any) -> None:
        if self.enabled(_WARNING):
            self.emit(_WARNING, event, fields, 2)

    def error(self, event: str, **fields: Any) -> None:
        if self.enabled(_ERROR):
            self.emit(_ERROR, event, fields, 2)

    def critical(self, event: str, **fields: Any) -> None:
        if self.enabled(_CRITICAL):
            self.emit(_CRITICAL, event, fields, 2)

    def bind(self, **fields: Any) -> Logger:
        """The same logger with ``fields`` added to every line."""
        bound = Logger(self.name, {**self._fields, **fields})
        bound._std = self._std
        return bound

    def named(self, name: str) -> Logger:
        """The same fields under another logger name."""
        return Logger(name, self._fields)


def logger_name(module: str) -> str:
    """The logger name for ``module``: its dotted name without the private
    underscores (``dovecote.rpc._server`` -> ``dovecote.rpc.server``)."""
    return ".".join(part.lstrip("_") or part for part in module.split("."))


def get_logger(name: str) -> Logger:
    """dovecote's logger for module ``name`` (callers pass ``__name__``): the
    stdlib logger :func:`logger_name` names, or the application's structlog
    once it configured structlog."""
    return Logger(logger_name(name))


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
    keeps one) and to its logger if that level is enabled there, asked at
    each line. Callers test :attr:`records_debug` before building fields for
    a debug event."""

    __slots__ = ("_ring", "_takes", "_under", "history", "log")

    def __new__(cls, log: Logger, history: History | None = None) -> ActorLog:  # noqa: ARG004
        # With a history, every debug event is recorded: see _RecordingLog.
        return super().__new__(_RecordingLog if history is not None else cls)

    def __init__(self, log: Logger, history: History | None = None) -> None:
        self.log = log
        self.history = history
        # The ring itself: a debug event on the dispatch path is one append.
        self._ring = None if history is None else history.ring
        # The stdlib logger's level check, asked directly on the dispatch path.
        self._takes = log.stdlib().isEnabledFor
        self._under: tuple[ActorLog, ActorLog] | None = None  # the last :meth:`under`

    @property
    def records_debug(self) -> bool:
        """Whether a debug event goes anywhere: with no history (a history
        records every one: :class:`_RecordingLog`), whether the logger takes it."""
        if _STRUCTLOG.is_configured:
            return self.log.enabled(_DEBUG)
        return self._takes(_DEBUG)

    @property
    def logs_debug(self) -> bool:
        """Whether the logger takes debug lines (the history aside)."""
        if _STRUCTLOG.is_configured:
            return self.log.enabled(_DEBUG)
        return self._takes(_DEBUG)

    def bind(self, history: History | None = None, **fields: Any) -> ActorLog:
        """The same log with ``fields`` bound (and another history, if given)."""
        return ActorLog(self.log.bind(**fields), history or self.history)

    def under(self, module_log: ActorLog) -> ActorLog:
        """This actor's log (its fields, its history) under the logger name of
        ``module_log``: a handler's line written in an actor's thread goes to
        the handler module's logger (``dovecote.rpc.server``), with the
        actor's identity. The last answer is kept: an actor serves one handler."""
        last = self._under
        if last is not None and last[0] is module_log:
            return last[1]
        found = (self if module_log.log.name == self.log.name
                 else ActorLog(self.log.named(module_log.log.name), self.history))
        self._under = (module_log, found)
        return found

    # The debug methods ask the stdlib logger inline (the dispatch path makes
    # four such events per message); :meth:`Logger.enabled` says the same.
    def debug(self, event: str, **fields: Any) -> None:
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, fields))
        if (self.log.enabled(_DEBUG) if _STRUCTLOG.is_configured
                else self._takes(_DEBUG)):
            self.log.emit(_DEBUG, event, fields, 2)

    def debug_fields(self, event: str, fields: dict[str, Any]) -> None:
        """:meth:`debug` with the fields as a dict (kept as it is: one dict
        fewer on the dispatch path)."""
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, fields))
        if (self.log.enabled(_DEBUG) if _STRUCTLOG.is_configured
                else self._takes(_DEBUG)):
            self.log.emit(_DEBUG, event, fields, 2)

    def debug_values(self, event: str, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """:meth:`debug` with the fields as names and values: the cheapest
        record, for the events every message makes."""
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, keys, values))
        if (self.log.enabled(_DEBUG) if _STRUCTLOG.is_configured
                else self._takes(_DEBUG)):
            self.log.emit(_DEBUG, event, dict(zip(keys, values, strict=True)), 2)

    def record_values(self, event: str, keys: tuple[str, ...], values: tuple[Any, ...]) -> None:
        """A debug event for the history alone (the caller knows the logger
        does not take debug lines)."""
        if self._ring is not None:
            self._ring.append((_now(), "debug", event, keys, values))

    def info(self, event: str, **fields: Any) -> None:
        if self._ring is not None:
            self._ring.append((_now(), "info", event, fields))
        log = self.log
        if log.enabled(_INFO):
            log.emit(_INFO, event, fields, 2)

    def warning(self, event: str, **fields: Any) -> None:
        if self.history is not None:
            self.history.add("warning", event, fields)
        log = self.log
        if log.enabled(_WARNING):
            log.emit(_WARNING, event, fields, 2)

    def error(self, event: str, **fields: Any) -> None:
        if self.history is not None:
            self.history.add("error", event, fields)
        log = self.log
        if log.enabled(_ERROR):
            log.emit(_ERROR, event, fields, 2)


class _RecordingLog(ActorLog):
    """An :class:`ActorLog` with a history: every debug event is recorded, so
    :attr:`records_debug` is a constant (read once per event per message)."""

    __slots__ = ()
    records_debug = True


_thread = threading.local()


def set_actor_log(log: ActorLog | None) -> None:
    """Called by an actor in its own thread (``None`` when it stops): what a
    handler or driver logs in this thread then carries that actor's identity
    and lands in its history."""
    _thread.log = log


def actor_log(default: ActorLog) -> ActorLog:
    """The log of the actor running in this thread (under ``default``'s
    logger name, see :meth:`ActorLog.under`), else ``default``."""
    log: ActorLog | None = getattr(_thread, "log", None)
    return default if log is None else log.under(default)


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
