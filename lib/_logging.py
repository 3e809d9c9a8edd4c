"""An opt-in structlog set-up for applications that want JSON lines.

dovecote itself only calls ``structlog.get_logger()``; nothing here runs
unless the application calls :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

__all__ = ["configure_logging"]


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
