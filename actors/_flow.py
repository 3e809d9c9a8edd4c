"""Flow control: how many messages a server may hold before listeners pause."""

from __future__ import annotations

import collections
import threading

__all__ = ["CreditGate", "InFlight"]


class _Turn:
    """A listener waiting for credit, and how much it waits for."""

    __slots__ = ("need",)

    def __init__(self, need: int) -> None:
        self.need = need


class CreditGate:
    """Counts messages taken from transports and not yet finished.

    Listeners :meth:`acquire` credit before polling and poll for no more than
    they got, so a flood waits at the broker instead of in actor mailboxes.

    A listener that has to wait is woken once there is room for a useful
    batch (``refill``: an eighth of the limit, or what it asked for if less),
    not as each message finishes: with a backlog and every credit taken, a
    wake-up per finished message made the listener take one message per poll
    and contend with the workers for every lock on the way. The room it waits
    for is credit the server could not use yet anyway (the messages already
    taken wait for workers); a poll that times out waiting takes whatever
    room there is.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {limit}")
        self.limit = limit
        #: Room a waiting listener is woken for: an eighth of ``limit``.
        self.refill = max(1, limit // 8)
        self._in_flight = 0
        self._cond = threading.Condition(threading.Lock())
        # Listeners waiting for credit, first come first served: a listener that
        # gives its unused credit back and asks again at once queues behind them,
        # so one listener's idle polls cannot starve the server's other listeners.
        self._waiting: collections.deque[_Turn] = collections.deque()

    @property
    def in_flight(self) -> int:
        """Messages taken and not yet finished."""
        return self._in_flight

    def acquire(self, want: int, timeout: float) -> int:
        """Take up to ``want`` credits, waiting at most ``timeout`` (in turn with
        the other listeners waiting) for room for ``want`` or ``refill``,
        whichever is less; after that wait, whatever room there is (0: none)."""
        need = max(1, min(want, self.refill))
        with self._cond:
            if not self._waiting and self.limit - self._in_flight >= need:
                return self._grant(want)
            turn = _Turn(need)
            self._waiting.append(turn)
            try:
                self._cond.wait_for(
                    lambda: self._waiting[0] is turn
                    and self.limit - self._in_flight >= turn.need, timeout)
                if self._waiting[0] is not turn or self._in_flight >= self.limit:
                    return 0
                return self._grant(want)
            finally:
                self._waiting.remove(turn)
                self._cond.notify_all()  # the next in line may go now

    def _grant(self, want: int) -> int:
        granted = min(want, self.limit - self._in_flight)
        self._in_flight += granted
        return granted

    def release(self, count: int) -> None:
        """Give back ``count`` credits (messages finished, or credit not used)."""
        if count <= 0:
            return
        with self._cond:
            self._in_flight -= count
            waiting = self._waiting
            if waiting and self.limit - self._in_flight >= waiting[0].need:
                self._cond.notify_all()


class InFlight:
    """Messages one listener took that are not finished yet: a listener that
    stops taking (removed, crashed, server stopping) closes its driver listener
    only once this is back to zero, so nothing it took is settled on a closed
    connection (and handled twice). Thread-safe: jobs finish anywhere."""

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Taken and not finished."""
        return self._count

    def add(self, count: int) -> None:
        """``count`` more messages were handed to the dispatcher."""
        with self._lock:
            self._count += count

    def release(self, count: int) -> None:
        """``count`` of them are finished."""
        with self._lock:
            self._count -= count
