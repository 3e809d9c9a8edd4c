"""Reading and replaying dead letters: notifications parked on
``<topic>.<priority>.dead`` after their endpoints gave up on them.

None of it declares a dead-letter queue that does not exist (a mistyped topic
would leave a durable queue behind for ever): where the transport can tell
(:meth:`~dovecote.drivers.base.Driver.queue_info`), a missing queue is waited
for up to ``timeout`` and then means "nothing parked". A replay never replays
what it parked again itself: it stops after what was parked when it started,
and at the first notification it already replayed in this run (one that
failed again comes back behind the others).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from .._target import Target

if TYPE_CHECKING:
    from .._transport import Transport
    from ..drivers.base import Driver, IncomingMessage

__all__ = ["DeadLetter", "Replayed", "dead_letter_queue", "replay", "replay_dead_letters",
           "take_dead_letters"]

#: What to do with one delivery: settle it, leave it parked (unsettled, so the
#: broker takes it back), or leave it and stop reading.
_Verdict = Literal["ack", "leave", "stop"]

#: How often a missing dead-letter queue is looked for again (seconds).
_LOOK_AGAIN = 0.05


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One parked notification and why it was parked."""

    ctxt: dict[str, Any]
    message: dict[str, Any]
    reason: str | None
    redeliveries: int
    error: str | None = None  # set when the body itself could not be decoded


@dataclasses.dataclass(frozen=True, kw_only=True)
class Replayed:
    """What one replay did: how many notifications it sent again, how many it
    left parked because their bodies cannot be decoded, and whether it stopped
    at one it had already replayed (the endpoint still fails)."""

    replayed: int
    undecodable: int = 0
    came_back: bool = False


def dead_letter_queue(topic: str, priority: str) -> str:
    """The dead-letter queue of ``<topic>.<priority>``."""
    return f"{topic}.{priority.lower()}.dead"


def _look(driver: Driver, queue: str, timeout: float) -> tuple[bool, int] | None:
    """``(exists, messages)`` of ``queue``, waiting up to ``timeout`` for it to
    appear; ``None`` when the transport cannot tell (the listener then
    declares it, as it always did)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        info = driver.queue_info(queue)
        remaining = deadline - time.monotonic()
        if info is None or info[0] or remaining <= 0:
            return info
        pause.wait(min(_LOOK_AGAIN, remaining))


def _drain(
    transport: Transport, queue: str, *, limit: int | None, timeout: float,
    handle: Callable[[IncomingMessage], _Verdict],
) -> int:
    """Hand each delivery of ``queue`` to ``handle`` until ``limit`` were handled,
    ``handle`` says stop, or nothing arrived for ``timeout`` seconds; returns
    how many were handled. What is left unsettled goes back to the queue."""
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
                verdict = handle(incoming)
                if verdict == "stop":
                    return done
                if verdict == "ack":
                    incoming.acknowledge()  # else left unsettled: cleanup() gives it back
                done += 1
            deadline = time.monotonic() + timeout
    finally:
        listener.cleanup()
    return done


def take_dead_letters(
    transport: Transport, topic: str, priority: str, *, limit: int | None = None,
    timeout: float = 1.0, remove: bool = True,
) -> list[DeadLetter]:
    """Remove up to ``limit`` dead letters of ``<topic>.<priority>`` and return
    them; stops once none arrived for ``timeout`` seconds. With
    ``remove=False`` they are only read, and stay parked (at most what was
    parked when it started, and on RabbitMQ at most the prefetch count, 100:
    the broker holds back more until some are settled)."""
    queue = dead_letter_queue(topic, priority)
    transport.driver.ensure_open("read dead letters")
    info = _look(transport.driver, queue, timeout)
    if info is not None:
        exists, parked = info
        if not exists or not (remove or parked):
            return []  # nothing parked (and nothing declared for a mistyped topic)
        if not remove:
            limit = parked if limit is None else min(limit, parked)
    found: list[DeadLetter] = []

    def keep(incoming: IncomingMessage) -> _Verdict:
        found.append(DeadLetter(
            ctxt=incoming.ctxt, message=incoming.message, reason=incoming.dead_letter_reason,
            redeliveries=incoming.redeliveries, error=incoming.error,
        ))
        return "ack" if remove else "leave"

    _drain(transport, queue, limit=limit, timeout=timeout, handle=keep)
    return found


def _fingerprint(incoming: IncomingMessage) -> str:
    """What identifies a notification's body across a replay (it is sent again
    as it came, and parked again as it was sent)."""
    text = json.dumps([incoming.ctxt, incoming.message], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def replay(
    transport: Transport, topic: str, priority: str, *, limit: int | None = None,
    timeout: float = 1.0, exchange: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replayed:
    """:func:`replay_dead_letters`, saying what it did (see :class:`Replayed`)."""
    queue = dead_letter_queue(topic, priority)
    driver = transport.driver
    driver.ensure_open("replay dead letters")
    info = _look(driver, queue, timeout)
    if info is not None:
        exists, parked = info
        if not exists:
            return Replayed(replayed=0)  # nothing parked, nothing declared
        if parked:  # what is parked now (0 may be letters just given back: read on)
            limit = parked if limit is None else min(limit, parked)
    target = Target(exchange=exchange, topic=f"{topic}.{priority.lower()}")
    sent: set[str] = set()
    undecodable = 0
    came_back = False

    def resend(incoming: IncomingMessage) -> _Verdict:
        nonlocal undecodable, came_back
        if incoming.error is not None:
            undecodable += 1
            return "leave"
        key = _fingerprint(incoming)
        if key in sent:  # replayed, failed again, parked again: all before it are done
            came_back = True
            return "stop"
        driver.send_notification(target, incoming.ctxt, incoming.message, version=2.0)
        sent.add(key)
        if progress is not None:
            progress(len(sent))
        return "ack"

    _drain(transport, queue, limit=limit, timeout=timeout, handle=resend)
    return Replayed(replayed=len(sent), undecodable=undecodable, came_back=came_back)


def replay_dead_letters(
    transport: Transport, topic: str, priority: str, *, limit: int | None = None,
    timeout: float = 1.0, exchange: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send dead letters of ``<topic>.<priority>`` again, as new notifications
    (redelivery count reset), and return how many; ``progress`` is called
    with the count so far after each. It replays what was parked when it
    started (where the transport can tell), at most ``limit``, and stops at
    the first one it already replayed (its endpoint failed again) or once
    none arrived for ``timeout`` seconds: an endpoint that still fails never
    makes it loop. Bodies that could not be decoded are left parked."""
    return replay(transport, topic, priority, limit=limit, timeout=timeout,
                  exchange=exchange, progress=progress).replayed
