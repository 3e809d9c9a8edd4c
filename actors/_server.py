"""MessageHandlingServer: the actors of one RPC server or notification listener."""

from __future__ import annotations

import contextlib
import datetime
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pykka

from .._endpoints import all_refs, endpoint_counts
from ..observe import _autotrace, _probes
from ..observe._history import query_events, trace_events
from ..observe._logging import History, get_logger
from ._base import DovecoteActor, mailbox_depth, tell
from ._dispatcher import DispatcherActor
from ._flow import CreditGate
from ._heartbeat import HeartbeatTimer
from ._listener import ListenerActor
from ._messages import ListenerAdded, RemoveListener, StopServer
from ._spec import ListenerSpec
from ._worker import WorkerActor

if TYPE_CHECKING:
    from .._handling import Handler
    from .._target import Target
    from .._transport import Transport
    from ..drivers.base import IncomingMessage
    from ._flow import InFlight

__all__ = ["EXECUTORS", "MessageHandlingServer"]

EXECUTORS = ("blocking", "threading")
#: Events each actor keeps by default (``event_history``).
DEFAULT_HISTORY = 200
#: Histories a server keeps at most (ended actors' drop out first).
MAX_HISTORIES = 256
log = get_logger(__name__)


@contextlib.contextmanager
def _ctrl_c_stops(server: MessageHandlingServer) -> Iterator[threading.Event]:
    """While a blocking server runs in the main thread and Python's own SIGINT
    handler is in place (the application installed none), the first Ctrl+C asks
    the server to stop gracefully and the second raises ``KeyboardInterrupt`` at
    once. The event is set once Ctrl+C was pressed."""
    interrupted = threading.Event()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupted
        return

    def on_sigint(_signum: int, _frame: object) -> None:
        if interrupted.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        interrupted.set()
        server.stop()  # safe in a signal handler: a reentrant queue put

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class MessageHandlingServer:
    """Runs a handler (RPC or notifications) on actors: one listener actor per
    listener, one dispatcher actor, and for ``"threading"`` a pool of workers.

    ``start()`` (blocks for ``"blocking"``), ``stop()`` (never blocks; safe
    from signal handlers and endpoints), ``wait(timeout=None)`` (all actors
    gone), and ``start()`` again after ``wait()``.
    """

    def __init__(
        self, handler: Handler, *, executor: str = "threading", max_workers: int = 8,
        max_in_flight: int = 512, name: str = "server", endpoints: Sequence[Any] = (),
        event_history: int = DEFAULT_HISTORY,
    ) -> None:
        if executor not in EXECUTORS:
            msg = f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}"
            raise ValueError(msg)
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if event_history < 0:
            raise ValueError(f"event_history must be 0 (off) or more, not {event_history}")
        self.handler = handler
        self.executor = executor
        self.max_workers = max_workers
        self.max_in_flight = max_in_flight
        self.name = name
        self.endpoints = list(endpoints)
        self._specs: list[ListenerSpec] = []
        self._lock = threading.RLock()  # actors register themselves while start() holds it
        self._actors: list[DovecoteActor] = []
        self._dispatcher: pykka.ActorRef[Any] | None = None
        #: The running dispatcher's ``accept``, which listeners run (``"threading"``).
        self._hand_off: Callable[[list[IncomingMessage], InFlight], None] | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._heartbeats = HeartbeatTimer(name=name)
        self._gate = CreditGate(max_in_flight)
        #: The last ``event_history`` events of each actor (0: none are kept).
        self.event_history = event_history
        #: Every actor's history by URN, ended actors' too (the most recent ones).
        self._histories: dict[str, History] = {}
        for ref in all_refs(self.endpoints):
            self._endpoint_history(ref)
        self.handler.bind({"server": name}, self._heartbeats, self._endpoint_history)
        self.handler.owner = self
        _probes.track_server(self)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<MessageHandlingServer {self.name} executor={self.executor} {state}>"

    @property
    def running(self) -> bool:
        """Whether the server has started and not yet finished stopping."""
        return not self._stopped.is_set()

    @property
    def stopping(self) -> threading.Event:
        """Set by :meth:`stop` (until the next start): waits of work in flight
        (a settlement's back-off, say) are cut short on it."""
        return self._stopping

    @property
    def in_flight(self) -> int:
        """Messages taken from the transports and not finished yet (at most
        ``max_in_flight``). Read without the lock: never waits on a starting server."""
        return sum(actor.taken for actor in list(self._actors)
                   if isinstance(actor, ListenerActor) and actor.actor_ref.is_alive())

    def mailbox_depths(self) -> dict[str, int]:
        """Messages waiting in the mailboxes of the live actors, per kind of
        actor (``listener``, ``dispatcher``, ``worker``, ``endpoint``)."""
        depths: dict[str, int] = {}
        for actor in list(self._actors):  # a copy without the lock, as above
            if actor.actor_ref.is_alive():
                depths[actor.kind] = depths.get(actor.kind, 0) + mailbox_depth(
                    actor.actor_inbox)
        for ref in all_refs(self.endpoints):
            depths["endpoint"] = depths.get("endpoint", 0) + mailbox_depth(ref.actor_inbox)
        return depths

    # -- listeners --------------------------------------------------------------
    def listen(self, transport: Transport, target: Target) -> ListenerSpec:
        """Listen on ``target`` over ``transport`` too; before or after
        ``start()``. Returns a handle for :meth:`remove_listener`. A
        notification listener listens for its endpoints' priorities."""
        if self.handler.kind == "notification":
            return self.listen_for_notifications(
                transport, [(target, p) for p in self.handler.priorities], self.handler.pool
            )
        return self._add(ListenerSpec(transport=transport, target=target))

    def listen_for_notifications(
        self, transport: Transport, targets_and_priorities: Sequence[tuple[Target, str]],
        pool: str | None = None,
    ) -> ListenerSpec:
        """Listen for notifications on ``transport`` (one listener actor)."""
        return self._add(ListenerSpec(
            transport=transport, notification_targets=tuple(targets_and_priorities), pool=pool,
        ))

    def _add(self, spec: ListenerSpec) -> ListenerSpec:
        with self._lock:
            if self._dispatcher is not None:
                self._start_listener(spec)
            self._specs.append(spec)
        return spec

    def _start_listener(self, spec: ListenerSpec) -> None:
        assert self._dispatcher is not None
        ref = self._spawn_listener(spec, 0, 0.0)
        tell(self._dispatcher, ListenerAdded(ref, spec))

    def remove_listener(self, spec: ListenerSpec) -> None:
        """Stop listening on what :meth:`listen` added."""
        with self._lock:
            self._specs.remove(spec)
            if self._dispatcher is not None:
                tell(self._dispatcher, RemoveListener(spec))

    def _spawn_listener(self, spec: ListenerSpec, attempt: int, delay: float) -> pykka.ActorRef[
        Any
    ]:
        assert self._dispatcher is not None
        return ListenerActor.start(
            spec=spec, dispatcher=self._dispatcher, gate=self._gate,
            batched=self.handler.batched, batch_size=self.handler.batch_size,
            batch_timeout=self.handler.batch_timeout, attempt=attempt, delay=delay,
            server_stopping=self._stopping, server=self.name, track=self._track,
            history=self.event_history, hand_off=self._hand_off,
        )

    def _track(self, actor: DovecoteActor) -> None:
        with self._lock:
            self._actors = [a for a in self._actors if a.actor_ref.is_alive()]
            self._actors.append(actor)
            if actor.history is not None:
                self._keep(actor.actor_urn, actor.history)

    def _keep(self, urn: str, history: History) -> None:
        """Keep ``history`` (under the lock); forget the oldest ended actors' ones
        beyond ``MAX_HISTORIES``."""
        self._histories[urn] = history
        if len(self._histories) > MAX_HISTORIES:
            alive = {a.actor_urn for a in self._actors} | {
                ref.actor_urn for ref in all_refs(self.endpoints)}
            for old in [u for u in self._histories if u not in alive][
                    :len(self._histories) - MAX_HISTORIES]:
                del self._histories[old]

    def _endpoint_history(self, ref: pykka.ActorRef[Any]) -> History | None:
        """The history of an endpoint actor (it is the application's actor: the
        server keeps what dovecote logs on its behalf)."""
        if not self.event_history:
            return None
        with self._lock:
            found = self._histories.get(ref.actor_urn)
            if found is None:
                found = History(self.event_history, {
                    "actor": ref.actor_class.__name__, "actor_urn": ref.actor_urn,
                    "kind": "endpoint", "server": self.name})
                self._keep(ref.actor_urn, found)
            return found

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        """Start the actors. With ``"blocking"`` this returns only after
        ``stop()``, having run every endpoint method in this thread."""
        _autotrace.autoload()
        with self._lock:
            if self._dispatcher is not None:
                return
            self._stopped.clear()
            self._stopping.clear()
            holder: list[DispatcherActor] = []
            blocking = self.executor == "blocking"
            self._dispatcher = DispatcherActor.start(
                handler=self.handler, gate=self._gate, spawn_listener=self._spawn_listener,
                on_stopped=self._on_dispatcher_stopped, server=self.name,
                in_caller_thread=blocking, holder=holder, track=self._track,
                history=self.event_history,
            )
            dispatcher = holder[0]
            self._hand_off = None if blocking else dispatcher.accept
            if not blocking:
                dispatcher.add_workers([
                    WorkerActor.start(dispatcher=self._dispatcher, work=dispatcher.work,
                                      gate=self._gate, server=self.name, track=self._track,
                                      history=self.event_history)
                    for _ in range(self.max_workers)
                ])
            error: BaseException | None = None
            try:
                for spec in self._specs:
                    self._start_listener(spec)
            except BaseException as exc:  # noqa: BLE001 - raised again below
                # Undo the start: the listeners already running and the workers
                # stop, and start() raises only once they are gone.
                self._dispatcher.tell(StopServer())
                error = exc
        if error is not None:
            if blocking:
                dispatcher.run_here()
            self.wait()
            raise error
        self._ready.set()
        log.info("server.started", server=self.name, executor=self.executor,
                 listeners=len(self._specs))
        if blocking:
            self._run_blocking(dispatcher)

    def _run_blocking(self, dispatcher: DispatcherActor) -> None:
        """Run the dispatcher's loop here until the server stopped. Ctrl+C stops
        it gracefully, then ``KeyboardInterrupt`` is raised from ``start()``."""
        with _ctrl_c_stops(self) as interrupted:
            try:
                dispatcher.run_here()
            except KeyboardInterrupt:
                if interrupted.is_set():  # a second Ctrl+C while stopping: give up
                    self._abandon(dispatcher)
                else:  # raised by a handler of the application's: stop gracefully
                    interrupted.set()
                    self.stop()
                    try:
                        dispatcher.run_here(resume=True)  # finish what was taken
                    except KeyboardInterrupt:
                        self._abandon(dispatcher)
        if interrupted.is_set():
            log.warning("server.interrupted", server=self.name,
                        note="stopped by Ctrl+C; KeyboardInterrupt raised from start()")
            raise KeyboardInterrupt

    def stop(self) -> None:
        """Ask the server to stop: listeners first, then in-flight work
        finishes (replies are still sent), then the dispatcher and workers.
        Returns at once; :meth:`wait` waits for it."""
        with self._lock:
            dispatcher = self._dispatcher
        if dispatcher is not None:
            self._stopping.set()
            with contextlib.suppress(pykka.ActorDeadError):  # stopped meanwhile
                dispatcher.tell(StopServer())

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the server has started its listeners (useful for a
        ``"blocking"`` server started in another thread); ``False`` on timeout."""
        return self._ready.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every actor of the server has stopped; ``False`` if
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._stopped.wait(timeout):
            return False
        with self._lock:
            actors = list(self._actors)
        for actor in actors:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not actor.actor_stopped.wait(remaining):
                return False
            if isinstance(actor, DispatcherActor) and actor.in_caller_thread:
                # The blocking executor: its loop ran in a thread of the
                # application's, which goes on; wait for the loop, not the thread.
                if not actor.loop_done.wait(remaining):
                    return False
                continue
            thread = actor.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(remaining)
                if thread.is_alive():
                    return False
        with self._lock:
            self._actors = [a for a in self._actors if a.actor_ref.is_alive()]
        return True

    def _on_dispatcher_stopped(self) -> None:
        self._ready.clear()
        self._heartbeats.stop()
        with self._lock:
            self._dispatcher = None
        self._stopped.set()

    def _abandon(self, dispatcher: DispatcherActor) -> None:
        """The blocking executor's loop cannot run any more: stop without
        finishing what was taken (requests already acknowledged are lost, and
        logged; notifications go back to the broker unacknowledged)."""
        log.error("server.abandoned", server=self.name, in_flight=dispatcher.in_flight)
        dispatcher.abandon()
        self._ready.clear()

    # -- introspection ------------------------------------------------------------
    def actors(self) -> list[dict[str, Any]]:
        """A live snapshot: one record per actor (``kind``, ``urn``, ``target``,
        ``alive``, ``mailbox`` depth (also as ``mailbox_depth``), ``handled``,
        ``failed``), endpoint actors included (their ``handled`` and ``failed``
        count what they ran for dovecote, by any server, and what raised)."""
        with self._lock:
            actors = [a for a in self._actors if a.actor_ref.is_alive()]
        records = []
        for actor in actors:
            record = actor.snapshot()
            record.setdefault("target", None)
            record["server"] = self.name
            records.append(record)
        for ref in all_refs(self.endpoints):
            handled, failed = endpoint_counts(ref)
            records.append({
                "kind": "endpoint", "urn": ref.actor_urn, "actor": ref.actor_class.__name__,
                "alive": ref.is_alive(), "mailbox": mailbox_depth(ref.actor_inbox),
                "mailbox_depth": mailbox_depth(ref.actor_inbox),
                "handled": handled, "failed": failed, "target": None, "server": self.name,
            })
        return records

    def events(
        self, *, actor: str | None = None, kind: str | None = None, msg_id: str | None = None,
        since: float | str | datetime.datetime | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The actors' recent events in time order, as dicts with ``event``,
        ``level``, ``timestamp`` (ISO 8601, UTC), ``time`` (seconds since the
        epoch), ``actor``, ``actor_urn``, ``kind``, ``server`` and the event's
        fields: of one actor (``actor``: its URN, or a class name such as
        ``WorkerActor`` for all of that class), one ``kind`` (``listener``,
        ``dispatcher``, ``worker``, ``endpoint``), about one message
        (``msg_id``), after ``since``; the last ``limit`` of them."""
        with self._lock:
            histories = list(self._histories.values())
        return query_events(histories, actor=actor, kind=kind, msg_id=msg_id, since=since,
                            limit=limit)

    def trace(self, msg_id: str) -> list[dict[str, Any]]:
        """One message's way through the actors (listener, dispatcher, worker or
        endpoint actor, reply): its events in time order, each with
        ``elapsed_ms`` since the first and ``spent_ms`` until the next."""
        return trace_events(self.events(msg_id=msg_id))
