"""Settling a notification when the broker refuses: a requeue or dead letter
that failed is tried again after a short back-off, and when every try failed
the caller releases the delivery (gives it back to its queue unchanged), so
that every delivery ends settled and a listener's prefetch is never used up by
deliveries nobody settles.

The back-off is short and bounded (a worker is held up a second or two at
most), ends early when the server stops, and is what bounds a poison message
the broker keeps redelivering: it comes round at most once per back-off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["SETTLE_WAITS", "settle_patiently"]

#: Seconds between the tries of a requeue or dead letter that failed (one try
#: more than waits).
SETTLE_WAITS = (0.25, 0.5, 1.0)

#: What is waited on when no server owns the handler (nothing cuts waits short).
_NEVER = threading.Event()


def settle_patiently(
    settle: Callable[[], object], *, failed: Callable[[int, float | None, Exception], None],
    stopping: object = None, patient: bool = True,
) -> bool:
    """Run ``settle``, trying again after each of :data:`SETTLE_WAITS` while it
    raises; ``False`` once every try failed. ``failed(attempt, retry_in,
    error)`` is told of each failure (``retry_in`` is ``None`` for the last).
    ``stopping`` (a :class:`threading.Event`, the server's) ends the waits;
    ``patient=False`` makes one try only."""
    waits = SETTLE_WAITS if patient else ()
    event = stopping if isinstance(stopping, threading.Event) else _NEVER
    attempt = 0
    while True:
        try:
            settle()
        except Exception as exc:  # noqa: BLE001 - told, tried again, then released
            wait = waits[attempt] if attempt < len(waits) and not event.is_set() else None
            attempt += 1
            failed(attempt, wait, exc)
            if wait is None or event.wait(wait):
                return False
        else:
            return True
