"""How values show in log lines, events and errors: briefly, never whole, and
never raising (what a peer sent, or a user's exception, may be anything)."""

from __future__ import annotations

import time

__all__ = ["clip", "describe", "elapsed_ms", "log_field"]


def describe(exc: BaseException, limit: int = 500) -> str:
    """``repr(exc)`` for a log line or a reason, cut to ``limit`` characters;
    never raises, even for an exception whose ``__repr__`` does."""
    try:
        text = repr(exc)
    except Exception:  # noqa: BLE001 - user code: fall back to the class name
        text = f"{type(exc).__name__}(<unprintable>)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(value: object, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: how a field a peer sent is
    quoted in a log line or an error, never the whole of it."""
    # Never the contents of a list or dict: its type only.
    text = repr(value[: limit + 1]) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def elapsed_ms(since: float) -> float:
    """Milliseconds since ``since`` (a ``time.monotonic()``), to the
    microsecond: ``round()`` costs four times as much, on every message."""
    return int((time.monotonic() - since) * 1_000_000) / 1000


def log_field(value: object, limit: int = 255) -> str | None:
    """A field a peer sent (an event type, a publisher id), as a log line may
    carry it: text cut to ``limit`` characters, or only the type of anything else."""
    if value is None or isinstance(value, str):
        return value if value is None or len(value) <= limit else value[: limit - 3] + "..."
    return f"<{type(value).__name__}>"
