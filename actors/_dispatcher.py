"""DispatcherActor: takes batches from listeners, runs or hands out the work,
supervises listeners, and carries out the graceful stop."""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from .._handling import Job, trace_id
from ..observe import _probes
from ..observe._fields import describe
from ..observe._logging import set_actor_log
from ._base import SHUTDOWN, DovecoteActor, Track, tell
from ._messages import (
    WORK,
    Batch,
    Completed,
    ListenerAdded,
    ListenerCrashed,
    ListenerDone,
    RemoveListener,
    StopServer,
    WorkerIdle,
)
from ._worker import WorkQueue, run_job

if TYPE_CHECKING:
    from .._handling import Handler
    from ..drivers.base import IncomingMessage
    from ._flow import CreditGate, InFlight
    from ._spec import ListenerSpec

__all__ = ["DispatcherActor"]

#: Restart delays for a crashed listener: 0.1 s doubling up to 10 s.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
#: A listener that ran this long before it crashed restarts from the first delay.
BACKOFF_RESET = 30.0

SpawnListener = Callable[["ListenerSpec", int, float], "pykka.ActorRef[Any]"]


class DispatcherActor(DovecoteActor):
    """The hub of a server. With the ``"blocking"`` executor it runs jobs
    itself, in the thread that called ``server.start()``; with
    ``"threading"`` it puts them in a queue that idle workers take from, one
    job at a time, so no job waits behind another while a worker is idle."""

    kind = "dispatcher"

    def __init__(
        self, *, handler: Handler, gate: CreditGate, spawn_listener: SpawnListener,
        on_stopped: Callable[[], None], server: str, in_caller_thread: bool,
        holder: list[DispatcherActor], track: Track = None, history: int = 0,
    ) -> None:
        super().__init__(track=track, history=history, server=server)
        holder.append(self)  # lets the blocking executor run this actor's loop
        self.handler = handler
        self.gate = gate
        self.spawn_listener = spawn_listener
        self.on_stopped = on_stopped
        self.in_caller_thread = in_caller_thread
        self.loop_in_caller = in_caller_thread  # the blocking executor runs the loop
        self.workers: list[pykka.ActorRef[Any]] = []
        #: Jobs not yet taken and the idle workers; workers take jobs themselves.
        self.work = WorkQueue()
        #: Batches the blocking executor received less what finished outside the
        #: work queue (``Completed``, e.g. actor endpoints); with ``"threading"``
        #: listeners count their batches in ``work`` instead, so this may go
        #: below zero: only the sum, :attr:`in_flight`, means anything.
        self.outstanding = 0
        #: Every listener actor alive: polling, or draining before it closes.
        self.listeners: dict[pykka.ActorRef[Any], ListenerSpec] = {}
        # Listeners that were done before the server's ListenerAdded reached us.
        self.gone: set[pykka.ActorRef[Any]] = set()
        #: Listeners removed by ``remove_listener``: one that crashed is not restarted.
        self.removed: weakref.WeakSet[ListenerSpec] = weakref.WeakSet()
        self.stopping = False
        self.finished = False
        #: Set once this actor's loop has ended (what ``server.wait()`` waits for).
        self.loop_done = threading.Event()

    # -- blocking executor: run the actor loop in the caller's thread -----------
    def run_here(self, *, resume: bool = False) -> None:
        """Run this actor's loop in the calling thread until it stops
        (``resume``: again, after an interruption left it)."""
        self.run_loop_here(resume=resume)

    def on_loop_ended(self) -> None:
        self.loop_done.set()

    def on_start(self) -> None:
        if not self.in_caller_thread:
            super().on_start()
        else:
            self.thread = threading.current_thread()
            set_actor_log(self.log)

    def add_workers(self, workers: list[pykka.ActorRef[Any]]) -> None:
        """Give the dispatcher its worker pool (before the first message)."""
        self.workers = list(workers)
        self.work.idle.extend(workers)

    @property
    def in_flight(self) -> int:
        """Messages received and not finished yet."""
        return self.outstanding + self.work.unfinished()

    # -- the hand-off -------------------------------------------------------------
    def accept(self, messages: list[IncomingMessage], source: InFlight) -> None:
        """Take a listener's batch in *its* thread (the ``"threading"`` executor):
        jobs go straight to the shared queue and an idle worker is woken, so a
        message wakes two threads on its way from the socket to the endpoint
        (the listener's, a worker's) instead of three. The dispatcher's own
        code, counted in its queue and recorded in its history; thread-safe
        (listeners hand over concurrently); runs no user code; never raises."""
        jobs = self._received(messages, source)
        worker = self.work.put(jobs, len(messages))
        if worker is not None:
            tell(worker, WORK)

    def _received(self, messages: list[IncomingMessage], source: InFlight) -> list[Job]:
        if _probes.probes:
            _probes.received(self.handler.owner, self.handler.kind, len(messages))
        if self.log.records_debug:
            ids = [m.trace or trace_id(m) for m in messages if not m.quiet]
            if ids:
                self.log.debug_fields("message.queued", {"count": len(ids), "msg_ids": ids})
        return self._prepare(messages, source)

    # -- messages ---------------------------------------------------------------
    def on_message(self, message: Any) -> Any:
        if isinstance(message, Batch):  # the blocking executor: run them here
            self.outstanding += len(message.messages)
            self._dispatch(self._received(message.messages, message.source))
        elif isinstance(message, WorkerIdle):
            self._maybe_finish()
        elif isinstance(message, Completed):
            self._settled(message.count, 0 if message.ok else message.count)
        elif isinstance(message, ListenerAdded):
            if message.listener in self.gone:  # already done: forget it
                self.gone.discard(message.listener)
                return None
            self.listeners[message.listener] = message.spec
            if self.stopping:
                tell(message.listener, SHUTDOWN)
        elif isinstance(message, RemoveListener):
            self.removed.add(message.spec)
            for ref, spec in self.listeners.items():
                if spec is message.spec:
                    tell(ref, SHUTDOWN)
        elif isinstance(message, ListenerCrashed):
            self._listener_crashed(message)
        elif isinstance(message, ListenerDone):
            if self.listeners.pop(message.listener, None) is None:
                self.gone.add(message.listener)
            self._maybe_finish()
        elif isinstance(message, StopServer):
            self._begin_stop()
        return None

    def _prepare(self, messages: list[IncomingMessage], source: InFlight) -> list[Job]:
        """The handler's jobs for a batch, each knowing the listener that took it.
        ``prepare`` never raises; if a bug made it, the hub would die with every
        message in flight, so each message is handed back through ``abandon``."""
        done = functools.partial(self._report_done, source)
        try:
            jobs = self.handler.prepare(messages, done)
        except Exception as exc:  # noqa: BLE001 - the hub must survive its handler
            self.log.error("dispatch.internal_error", count=len(messages), error=describe(exc))
            jobs = [Job(functools.partial(self._abandon, incoming, exc)) for incoming in messages]
        for job in jobs:
            job.source = source
        return jobs

    def _abandon(self, incoming: IncomingMessage, error: Exception) -> bool:
        self.handler.abandon(incoming, error)
        return False

    def _report_done(self, source: InFlight, count: int, ok: bool) -> None:  # noqa: FBT001
        # Called from any thread (endpoint actors): free the credit now, count later.
        self.gate.release(count)
        source.release(count)
        tell(self.actor_ref, Completed(count, ok))

    def _settled(self, count: int, failed: int) -> None:
        self.outstanding -= count
        self.handled += count - failed
        self.failed += failed
        self._maybe_finish()

    def _dispatch(self, jobs: list[Job]) -> None:
        if not self.workers:  # "blocking": run the jobs here, in the caller's thread
            for job in jobs:
                ok = run_job(job, self.gate, self.log)
                self._settled(job.count, 0 if ok else job.count)
            return
        worker = self.work.put(jobs)
        if worker is not None:
            tell(worker, WORK)

    # -- listeners --------------------------------------------------------------
    def _listener_crashed(self, message: ListenerCrashed) -> None:
        """The crashed listener drains and closes by itself (``ListenerDone``);
        a new one takes its place after a backoff delay."""
        if self.stopping or message.spec in self.removed:
            return
        attempt = 0 if message.healthy_for >= BACKOFF_RESET else message.attempt
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt)
        self.log.warning("listener.restarting", listener=message.spec.describe(),
                         attempt=attempt + 1, delay_s=delay, error=message.error)
        ref = self.spawn_listener(message.spec, attempt + 1, delay)
        self.listeners[ref] = message.spec

    # -- graceful stop ----------------------------------------------------------
    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.work.report = True  # from now on, workers say when they run out of jobs
        self.log.info("server.stopping", in_flight=self.in_flight)
        for ref in self.listeners:
            tell(ref, SHUTDOWN)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if (not self.stopping or self.in_flight or self.work.jobs or self.listeners
                or self.finished):
            return
        self.finished = True
        for worker in self.workers:
            tell(worker, SHUTDOWN)
        self.log.info("server.stopped")
        self.stop()

    def abandon(self) -> None:
        """The blocking executor's loop was interrupted for good: give up what
        was taken and not run (listeners then close at once, the broker keeps
        the notifications they did not acknowledge), stop the listeners, and
        stop without running the loop again."""
        while (job := self.work.next_job()) is not None:
            self.gate.release(job.count)
            if job.source is not None:
                job.source.release(job.count)
        for ref in self.listeners:
            tell(ref, SHUTDOWN)
        self.stop_now()
        self.loop_done.set()

    def snapshot(self) -> dict[str, Any]:
        record = super().snapshot()
        record["handled"] += self.work.settled - self.work.failed  # run by the workers
        record["failed"] += self.work.failed
        return record

    def on_stop(self) -> None:
        if self.in_caller_thread:
            set_actor_log(None)  # the caller's thread goes on without this identity
        self.on_stopped()
