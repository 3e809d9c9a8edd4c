"""Call-monitor heartbeats: one timer thread per server, started on first use."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._handling import HeartbeatScheduler
from ..observe._fields import describe
from ..observe._logging import get_logger

if TYPE_CHECKING:
    import pykka

    from ..drivers.base import IncomingMessage

__all__ = ["HeartbeatTimer"]

log = get_logger(__name__)
#: How often a watched endpoint actor is checked.
WATCH_INTERVAL = 0.25
#: How long stop() waits for the timer thread.
_STOP_PATIENCE = 1.0
#: The longest single wait of the timer thread (a wait is re-armed after it).
_LONGEST_WAIT = 3600.0


class _Task:
    """Something the timer thread does every ``interval`` seconds while ``active``."""

    __slots__ = ("active", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = min(max(interval, 0.01), _LONGEST_WAIT)
        self.active = True

    def fire(self) -> None:
        raise NotImplementedError


class _Beat(_Task):
    """A call-monitor heartbeat for a running call."""

    __slots__ = ("incoming",)

    def __init__(self, incoming: IncomingMessage, interval: float) -> None:
        super().__init__(interval)
        self.incoming = incoming

    def fire(self) -> None:
        try:
            self.incoming.heartbeat()
        except Exception as exc:  # noqa: BLE001 - the call goes on; log it
            with contextlib.suppress(Exception):
                log.warning("heartbeat.failed", msg_id=self.incoming.msg_id,
                            error=describe(exc))


class _Watch(_Task):
    """Calls ``on_gone`` once the endpoint actor behind ``ref`` has stopped."""

    __slots__ = ("on_gone", "ref")

    def __init__(self, ref: pykka.ActorRef[Any], on_gone: Callable[[], None]) -> None:
        super().__init__(WATCH_INTERVAL)
        self.ref = ref
        self.on_gone = on_gone

    def fire(self) -> None:
        if self.ref.actor_stopped.is_set():
            self.active = False
            self.on_gone()


class HeartbeatTimer(HeartbeatScheduler):
    """One thread per server, started on first use, that sends ``{"ending":
    false}`` heartbeats for running calls whose caller set a call-monitor
    timeout (every half of it), and watches endpoint actors that hold requests
    (a stopped actor drops what waited in its mailbox: the request is failed)."""

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Task]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def track(self, incoming: IncomingMessage, interval: float) -> object:
        return self._schedule(_Beat(incoming, interval))

    def watch(self, ref: pykka.ActorRef[Any], on_gone: Callable[[], None]) -> object:
        return self._schedule(_Watch(ref, on_gone))

    def untrack(self, token: object) -> None:
        assert isinstance(token, _Task)
        token.active = False

    def _schedule(self, task: _Task) -> _Task:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name=f"dovecote-heartbeat-{self._name}", daemon=True
                )
                self._thread.start()
            entry = (time.monotonic() + task.interval, next(self._counter), task)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:  # due before what the thread waits for: wake it
                self._cond.notify()
        return task

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
                due, _, task = self._heap[0]
                if due > now:
                    self._cond.wait(min(due - now, _LONGEST_WAIT))
                    continue
                heapq.heapreplace(self._heap, (now + task.interval, next(self._counter), task))
                self._cond.release()
                try:
                    task.fire()
                except Exception as exc:  # noqa: BLE001 - a bug: logged, the thread goes on
                    with contextlib.suppress(Exception):
                        log.error("timer.task_failed", error=describe(exc))
                finally:
                    self._cond.acquire()

    def stop(self) -> None:
        """Stop the timer thread; wait for it a moment (a heartbeat being sent
        through a broker outage ends on its own, bounded by the driver's retries)."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_PATIENCE)
