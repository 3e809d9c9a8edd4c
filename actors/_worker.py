"""WorkerActor: runs jobs for the thread-pool executor, pulling them one at a
time from the dispatcher's shared queue, so no job waits behind a slow one
while another worker is idle."""

from __future__ import annotations

import collections
import contextlib
from typing import TYPE_CHECKING, Any

from dovecote._handling import describe

from ._base import DovecoteActor, Track, tell
from ._messages import Work, WorkerIdle

if TYPE_CHECKING:
    import pykka

    from dovecote._handling import Job

    from ._flow import CreditGate

__all__ = ["WorkerActor", "run_job"]


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
    the queue is empty, then says it is idle again."""

    kind = "worker"

    def __init__(
        self, *, dispatcher: pykka.ActorRef[Any], jobs: collections.deque[Job],
        gate: CreditGate, server: str, track: Track = None, history: int = 0,
    ) -> None:
        super().__init__(track=track, history=history, server=server)
        self.dispatcher = dispatcher
        self.jobs = jobs
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Work):
            count = failed = 0
            while True:
                try:
                    job = self.jobs.popleft()  # deque: safe against the other workers
                except IndexError:
                    break
                count += job.count
                if not run_job(job, self.gate, self.log):
                    failed += job.count
            self.handled += count - failed
            self.failed += failed
            tell(self.dispatcher, WorkerIdle(self.actor_ref, count, failed))
        return None
