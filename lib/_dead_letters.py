"""Reading and replaying dead letters: notifications parked on
``<topic>.<priority>.dead`` after their endpoints gave up on them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._target import Target

if TYPE_CHECKING:
    from ._transport import Transport
    from .drivers.base import IncomingMessage

__all__ = ["DeadLetter", "replay_dead_letters", "take_dead_letters"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One parked notification and why it was parked."""

    ctxt: dict[str, Any]
    message: dict[str, Any]
    reason: str | None
    redeliveries: int
    error: str | None = None  # set when the body itself could not be decoded


def _drain(
    transport: Transport, topic: str, priority: str, *, limit: int | None, timeout: float,
    handle: Any,
) -> int:
    queue = f"{topic}.{priority.lower()}.dead"
    transport.driver.ensure_open("read dead letters")
    listener = transport.driver.listen_dead_letters(queue)
    done = 0
    deadline = time.monotonic() + timeout
    try:
        while limit is None or done < limit:
            remaining = deadline - time.monotonic()
            want = 100 if limit is None else min(100, limit - done)
            batch = listener.poll(max(0.0, min(remaining, 0.2)), want)
            if not batch:
                if remaining <= 0:
                    break
                continue
            for incoming in batch:
                if handle(incoming):
                    incoming.acknowledge()  # else left unsettled: cleanup() gives it back
                done += 1
            deadline = time.monotonic() + timeout
    finally:
        listener.cleanup()
    return done


def take_dead_letters(
    transport: Transport, topic: str, priority: str, *, limit: int | None = None,
    timeout: float = 1.0,
) -> list[DeadLetter]:
    """Remove up to ``limit`` dead letters of ``<topic>.<priority>`` and return
    them; stops once none arrived for ``timeout`` seconds."""
    found: list[DeadLetter] = []

    def keep(incoming: IncomingMessage) -> bool:
        found.append(DeadLetter(
            ctxt=incoming.ctxt, message=incoming.message, reason=incoming.dead_letter_reason,
            redeliveries=incoming.redeliveries, error=incoming.error,
        ))
        return True

    _drain(transport, topic, priority, limit=limit, timeout=timeout, handle=keep)
    return found


def replay_dead_letters(
    transport: Transport, topic: str, priority: str, *, limit: int | None = None,
    timeout: float = 1.0, exchange: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send up to ``limit`` dead letters of ``<topic>.<priority>`` again, as new
    notifications (redelivery count reset), and return how many; ``progress``
    is called with the count so far after each. Bodies that could not be
    decoded are left on the dead-letter queue."""
    target = Target(exchange=exchange, topic=f"{topic}.{priority.lower()}")
    driver = transport.driver
    skipped: list[IncomingMessage] = []
    sent: list[IncomingMessage] = []

    def resend(incoming: IncomingMessage) -> bool:
        if incoming.error is not None:
            skipped.append(incoming)
            return False
        driver.send_notification(target, incoming.ctxt, incoming.message, version=2.0)
        sent.append(incoming)
        if progress is not None:
            progress(len(sent))
        return True

    replayed = _drain(transport, topic, priority, limit=limit, timeout=timeout, handle=resend)
    return replayed - len(skipped)
