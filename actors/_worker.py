"""WorkerActor: runs jobs for the thread-pool executor, pulling them one at a
time from the dispatcher's shared :class:`WorkQueue`, so no job waits behind a
slow one while another worker is idle."""

from __future__ import annotations

import collections
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from ..observe._fields import describe
from ._base import DovecoteActor, Track, tell
from ._messages import WORK, WORKER_IDLE, Work

if TYPE_CHECKING:
    import pykka

    from .._handling import Job
    from ._flow import CreditGate

__all__ = ["WorkQueue", "WorkerActor", "run_job"]


class WorkQueue:
    """The jobs a dispatcher handed out, its idle workers, and what the workers
    finished, under one lock. A worker that finds no job joins ``idle`` in the
    same step, so going idle costs no message to the dispatcher (only a
    stopping one asks to be told: ``report``).

    Wake-ups are chained: :meth:`put` wakes one idle worker, and a worker that
    takes a job while others still wait wakes one more before running it. A
    job never waits behind a slow one while a worker is idle (at most for one
    wake-up), yet a burst of quick jobs wakes only as many workers as it keeps
    busy, not one per job."""

    __slots__ = ("_lock", "failed", "idle", "jobs", "received", "report", "settled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: collections.deque[Job] = collections.deque()
        self.idle: collections.deque[pykka.ActorRef[Any]] = collections.deque()
        #: Messages handed over with :meth:`put` (by listeners, in their threads).
        self.received = 0
        #: Messages the workers finished, and how many of them failed.
        self.settled = 0
        self.failed = 0
        #: Set by a stopping dispatcher: workers say when they run out of jobs.
        self.report = False

    def put(self, jobs: list[Job], received: int = 0) -> pykka.ActorRef[Any] | None:
        """Queue ``jobs`` (for ``received`` messages taken, counted here when a
        listener hands them over itself); the idle worker to wake for them (no
        longer idle), if any."""
        with self._lock:
            self.received += received
            self.jobs.extend(jobs)
            return self.idle.popleft() if self.idle and self.jobs else None

    def take(self, worker: pykka.ActorRef[Any], settled: int, failed: int) -> Job | None:
        """Count ``settled`` messages finished (``failed`` of them failed) and
        return the next job; ``None``: there is none and ``worker`` is idle."""
        with self._lock:
            self.settled += settled
            self.failed += failed
            if not self.jobs:
                self.idle.append(worker)
                return None
            job = self.jobs.popleft()
            helper = self.idle.popleft() if self.jobs and self.idle else None
        if helper is not None:
            tell(helper, WORK)
        return job

    def unfinished(self) -> int:
        """Messages counted by :meth:`put` less those the workers finished."""
        with self._lock:
            return self.received - self.settled

    def next_job(self) -> Job | None:
        """The next job, for a dispatcher that runs them itself (or drops them)."""
        with self._lock:
            return self.jobs.popleft() if self.jobs else None


def run_job(job: Job, gate: CreditGate, log: Any) -> bool:
    """Run ``job`` and give its credit back (to the server and to the listener
    that took its messages). A job never raises: one that does is a bug in
    dovecote, logged and counted as failed."""
    try:
        ok = job.run()
    except BaseException as exc:  # a bug in dovecote: logged, never kills a worker
        with contextlib.suppress(Exception):
            log.error("job.crashed", error=describe(exc), exc_info=exc)
        ok = False
    gate.release(job.count)
    if job.source is not None:
        job.source.release(job.count)
    return bool(ok)


class WorkerActor(DovecoteActor):
    """One of the ``max_workers`` actors of the ``"threading"`` executor. Woken
    by the dispatcher, it takes jobs from the shared queue one at a time until
    the queue is empty, which makes it idle again."""

    kind = "worker"

    def __init__(
        self, *, dispatcher: pykka.ActorRef[Any], work: WorkQueue,
        gate: CreditGate, server: str, track: Track = None, history: int = 0,
    ) -> None:
        super().__init__(track=track, history=history, server=server)
        self.dispatcher = dispatcher
        self.work = work
        self.gate = gate

    def on_message(self, message: Any) -> Any:
        if isinstance(message, Work):
            count = failed = 0
            while (job := self.work.take(self.actor_ref, count, failed)) is not None:
                count = job.count
                failed = 0 if run_job(job, self.gate, self.log) else count
                self.handled += count - failed
                self.failed += failed
            if self.work.report:
                tell(self.dispatcher, WORKER_IDLE)
        return None
