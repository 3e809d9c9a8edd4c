"""WorkerActor: runs jobs for the thread-pool executor."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from dovecote._handling import describe

from ._base import DovecoteActor, Track
from ._messages import Jobs, WorkerIdle

if TYPE_CHECKING:
    import pykka

    from dovecote._handling import Job

__all__ = ["WorkerActor", "run_jobs"]


def run_jobs(jobs: list[Job], log: Any) -> tuple[int, int]:
    """Run every job; return ``(messages, failed)``. A job never raises: one
    that does is a bug in dovecote, logged and counted as failed."""
    count = failed = 0
    for job in jobs:
        count += job.count
        try:
            ok = job.run()
        except BaseException as exc:  # a bug in dovecote: logged, never kills a worker
            with contextlib.suppress(Exception):
                log.error("job.crashed", error=describe(exc), exc_info=exc)
            ok = False
        if not ok:
            failed += job.count
    return count, failed


class WorkerActor(DovecoteActor):
    """One of the ``max_workers`` actors of the ``"threading"`` executor; tells
    the dispatcher when it is idle again, so work goes to idle workers only."""

    kind = "worker"

    def __init__(
        self, *, dispatcher: pykka.ActorRef[Any], server: str, track: Track = None
    ) -> None:
        super().__init__(track=track, server=server)
        self.dispatcher = dispatcher

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Jobs):
            count, failed = run_jobs(message.jobs, self.log)
            self.handled += count - failed
            self.failed += failed
            self.dispatcher.tell(WorkerIdle(self.actor_ref, count, failed))
        return None
