"""When a driver's long-lived connection (a listener's, a reply consumer's) tries
again after it was lost: the one back-off every driver shares.

A connection that served a while and then dropped is reopened at once (a broker
restart, a failover). One that keeps dropping soon after it opened (something on
the queue breaks the connection every time it is read, a broker that accepts and
then closes) is reopened after a growing wait, so a driver never spins against a
broker. Failed attempts wait longer each time, up to a maximum; every wait gets
the random share ``splay`` adds, so many clients do not come back in step. The
rabbit driver grows waits by a step (oslo.messaging's ``rabbit_retry_backoff``),
the AMQP 1.0 driver doubles them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["STABLE_AFTER", "Backoff"]

#: How long a connection must have served for its loss to be "news" (reopened at
#: once) rather than part of a run of connections that drop as soon as they open.
STABLE_AFTER = 10.0


class Backoff:
    """Waits before reconnection attempts: ``initial`` seconds after the first
    failed attempt; each further one waits ``factor`` times as long plus
    ``step``, at most ``maximum``. One instance per connection (or per send);
    not shared between threads."""

    def __init__(self, *, initial: float, maximum: float, step: float = 0.0,
                 factor: float = 1.0, splay: Callable[[float], float] = lambda wait: wait,
                 stable_after: float = STABLE_AFTER) -> None:
        self.initial = initial
        self.step = step
        self.factor = factor
        self.maximum = maximum
        self._splay = splay
        self._stable_after = stable_after
        self.interval = initial
        self._opened: float | None = None
        self._quick_losses = 0

    def opened(self) -> None:
        """The connection is open again."""
        self._opened = time.monotonic()

    def lost(self) -> float:
        """The connection was lost: how long to wait before reopening it. No wait
        after a connection that served a while, or after the first of a run that
        dropped soon after opening; the back-off for the rest of such a run."""
        opened, self._opened = self._opened, None
        if opened is None or time.monotonic() - opened >= self._stable_after:
            self._quick_losses = 0
            self.interval = self.initial
        else:
            self._quick_losses += 1
        if self._quick_losses <= 1:
            return self._splay(0.0)
        return self.failed()

    def failed(self) -> float:
        """An attempt to reopen failed: how long to wait before the next one."""
        wait = self._splay(self.interval)
        self.interval = min(self.interval * self.factor + self.step, self.maximum)
        return wait
