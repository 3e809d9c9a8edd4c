"""Call-monitor heartbeats: one timer thread per server, started on first use."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from typing import TYPE_CHECKING

import structlog

from dovecote._handling import HeartbeatScheduler, describe

if TYPE_CHECKING:
    from dovecote.drivers.base import IncomingMessage

__all__ = ["HeartbeatTimer"]

log = structlog.get_logger("dovecote.actors")
#: The longest single wait of the timer thread (a wait is re-armed after it).
_LONGEST_WAIT = 3600.0


class _Beat:
    __slots__ = ("active", "incoming", "interval")

    def __init__(self, incoming: IncomingMessage, interval: float) -> None:
        self.incoming = incoming
        self.interval = interval
        self.active = True


class HeartbeatTimer(HeartbeatScheduler):
    """Sends ``{"ending": false}`` heartbeats for running calls whose caller set
    a call-monitor timeout, every half of it, from one thread."""

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Beat]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def track(self, incoming: IncomingMessage, interval: float) -> object:
        beat = _Beat(incoming, min(max(interval, 0.01), _LONGEST_WAIT))
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name=f"dovecote-heartbeat-{self._name}", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (time.monotonic() + beat.interval,
                                        next(self._counter), beat))
            self._cond.notify()
        return beat

    def untrack(self, token: object) -> None:
        assert isinstance(token, _Beat)
        token.active = False

    def _run(self) -> None:
        # One thread serves every running call of the server: nothing may end it
        # but stop(). Intervals are bounded (CALL_MONITOR_RANGE), and whatever a
        # heartbeat raises is logged.
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                while self._heap and not self._heap[0][2].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, beat = self._heap[0]
                if due > now:
                    self._cond.wait(min(due - now, _LONGEST_WAIT))
                    continue
                heapq.heapreplace(self._heap, (now + beat.interval, next(self._counter), beat))
                self._cond.release()
                try:
                    beat.incoming.heartbeat()
                except Exception as exc:  # noqa: BLE001 - the call goes on; log it
                    with contextlib.suppress(Exception):
                        log.warning("heartbeat.failed", msg_id=beat.incoming.msg_id,
                                    error=describe(exc))
                finally:
                    self._cond.acquire()

    def stop(self) -> None:
        """Stop the timer thread and wait for it."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
