"""DispatcherActor: takes batches from listeners, runs or hands out the work,
supervises listeners, and carries out the graceful stop."""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from dovecote._handling import Job, describe, set_actor_log

from ._base import SHUTDOWN, DovecoteActor, Track
from ._messages import (
    FINISH,
    Batch,
    Completed,
    Jobs,
    ListenerAdded,
    ListenerCrashed,
    ListenerPaused,
    RemoveListener,
    StopServer,
    WorkerIdle,
)
from ._worker import run_jobs

if TYPE_CHECKING:
    from dovecote._handling import Handler
    from dovecote.drivers.base import IncomingMessage

    from ._flow import CreditGate
    from ._listener import ListenerSpec

__all__ = ["DispatcherActor"]

#: Restart delays for a crashed listener: 0.1 s doubling up to 10 s.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
#: Jobs handed to one worker at a time, at most.
MAX_CHUNK = 16

SpawnListener = Callable[["ListenerSpec", int, float], "pykka.ActorRef[Any]"]


class DispatcherActor(DovecoteActor):
    """The hub of a server. With the ``"blocking"`` executor it runs jobs
    itself, in the thread that called ``server.start()``; with
    ``"threading"`` it hands them to idle workers."""

    kind = "dispatcher"

    def __init__(
        self, *, handler: Handler, gate: CreditGate, spawn_listener: SpawnListener,
        on_stopped: Callable[[], None], server: str, in_caller_thread: bool,
        holder: list[DispatcherActor], track: Track = None,
    ) -> None:
        super().__init__(track=track, server=server)
        holder.append(self)  # lets the blocking executor run this actor's loop
        self.handler = handler
        self.gate = gate
        self.spawn_listener = spawn_listener
        self.on_stopped = on_stopped
        self.in_caller_thread = in_caller_thread
        self.workers: list[pykka.ActorRef[Any]] = []
        self.idle: collections.deque[pykka.ActorRef[Any]] = collections.deque()
        self.pending: collections.deque[Job] = collections.deque()
        self.outstanding = 0
        self.listeners: dict[pykka.ActorRef[Any], ListenerSpec] = {}
        self.paused: set[pykka.ActorRef[Any]] = set()
        # Listeners that crashed before the server's ListenerAdded reached us.
        self.crashed_early: set[pykka.ActorRef[Any]] = set()
        self.stopping = False
        self._done = self._report_done

    # -- blocking executor: run the actor loop in the caller's thread -----------
    def _start_actor_loop(self) -> None:
        if not self.in_caller_thread:
            super()._start_actor_loop()

    def run_here(self) -> None:
        """Run this actor's loop in the calling thread until it stops."""
        self._actor_loop()

    def on_start(self) -> None:
        if not self.in_caller_thread:
            super().on_start()
        else:
            self.thread = threading.current_thread()
            set_actor_log(self.log)

    def add_workers(self, workers: list[pykka.ActorRef[Any]]) -> None:
        """Give the dispatcher its worker pool (before the first message)."""
        self.workers = list(workers)
        self.idle.extend(workers)

    # -- messages ---------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Batch):
            self.outstanding += len(message.messages)
            self.pending.extend(self._prepare(message.messages))
            self._dispatch()
        elif isinstance(message, WorkerIdle):
            self.idle.append(message.worker)
            self.gate.release(message.count)
            self._settled(message.count, message.failed)
            self._dispatch()
        elif isinstance(message, Completed):
            self._settled(message.count, 0 if message.ok else message.count)
        elif isinstance(message, ListenerAdded):
            if message.listener in self.crashed_early:  # already replaced: forget it
                self.crashed_early.discard(message.listener)
                return None
            self.listeners[message.listener] = message.spec
            if self.stopping:
                message.listener.tell(SHUTDOWN)
        elif isinstance(message, RemoveListener):
            for ref, spec in list(self.listeners.items()):
                if spec is message.spec:
                    ref.tell(SHUTDOWN)
        elif isinstance(message, ListenerPaused):
            self._listener_paused(message.listener)
        elif isinstance(message, ListenerCrashed):
            self._listener_crashed(message)
        elif isinstance(message, StopServer):
            self._begin_stop()
        return None

    def _prepare(self, messages: list[IncomingMessage]) -> list[Job]:
        """The handler's jobs for a batch. ``prepare`` never raises; if a bug
        made it, the hub would die with every message in flight, so each
        message of the batch is handed back through ``abandon`` instead."""
        try:
            return self.handler.prepare(messages, self._done)
        except Exception as exc:  # noqa: BLE001 - the hub must survive its handler
            self.log.error("dispatch.internal_error", count=len(messages), error=describe(exc))
            return [Job(functools.partial(self._abandon, incoming, exc)) for incoming in messages]

    def _abandon(self, incoming: IncomingMessage, error: Exception) -> bool:
        self.handler.abandon(incoming, error)
        return False

    def _report_done(self, count: int, ok: bool) -> None:  # noqa: FBT001 - the Done signature
        # Called from any thread (endpoint actors): free the credit now, count later.
        self.gate.release(count)
        self.actor_ref.tell(Completed(count, ok))

    def _settled(self, count: int, failed: int) -> None:
        self.outstanding -= count
        self.handled += count - failed
        self.failed += failed
        self._maybe_finish()

    def _dispatch(self) -> None:
        if not self.workers:
            while self.pending:
                count, failed = run_jobs([self.pending.popleft()], self.log)
                self.outstanding -= count
                self.handled += count - failed
                self.failed += failed
                self.gate.release(count)
            self._maybe_finish()
            return
        while self.pending and self.idle:
            share = max(1, min(MAX_CHUNK, len(self.pending) // max(1, len(self.idle))))
            chunk = [self.pending.popleft() for _ in range(min(share, len(self.pending)))]
            self.idle.popleft().tell(Jobs(chunk))

    # -- listeners --------------------------------------------------------------
    def _spawn(self, spec: ListenerSpec, attempt: int, delay: float) -> None:
        ref = self.spawn_listener(spec, attempt, delay)
        self.listeners[ref] = spec

    def _listener_crashed(self, message: ListenerCrashed) -> None:
        if self.listeners.pop(message.listener, None) is None:
            # A listener the server started can crash before its ListenerAdded
            # arrives; that must not register the dead actor later.
            self.crashed_early.add(message.listener)
        self.paused.discard(message.listener)
        message.listener.tell(FINISH)
        if self.stopping:
            self._maybe_finish()
            return
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** message.attempt)
        self.log.warning("listener.restarting", listener=message.spec.describe(),
                         attempt=message.attempt + 1, delay_s=delay, error=message.error)
        self._spawn(message.spec, message.attempt + 1, delay)

    def _listener_paused(self, ref: pykka.ActorRef[Any]) -> None:
        if ref not in self.listeners:
            return
        if not self.stopping:  # removed on its own: finish it once it is drained
            self.listeners.pop(ref)
            ref.tell(FINISH)
            return
        self.paused.add(ref)
        self._maybe_finish()

    # -- graceful stop ----------------------------------------------------------
    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.log.info("server.stopping", in_flight=self.outstanding)
        for ref in self.listeners:
            ref.tell(SHUTDOWN)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self.stopping or self.outstanding or self.pending:
            return
        if set(self.listeners) - self.paused:
            return
        for ref in self.listeners:
            ref.tell(FINISH)
        for worker in self.workers:
            worker.tell(SHUTDOWN)
        self.listeners.clear()
        self.paused.clear()
        self.log.info("server.stopped")
        self.stop()

    def on_stop(self) -> None:
        if self.in_caller_thread:
            set_actor_log(None)  # the caller's thread goes on without this identity
        self.on_stopped()
