"""One test per pykka private hook ``dovecote.actors._pykka`` overrides.

They run against the installed pykka: a pykka release that renames or changes
one of ``_create_actor_inbox``, ``_start_actor_loop``, ``_actor_loop`` (with
``_actor_loop_running`` and ``_actor_loop_teardown``), ``_handle_receive`` or
``_stop`` fails here, before it breaks a server in a less obvious place.
"""

from __future__ import annotations

import inspect
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pykka
import pytest

from dovecote.actors._pykka import HookedActor

BOUND = 10.0


class Echo(HookedActor):
    """Answers every message with the name of the thread that handled it."""

    #: Every actor made, so a test holds the actor itself (a ref holds it weakly,
    #: and an actor whose loop waits for a caller has no thread to hold it).
    made: ClassVar[list[Echo]] = []

    def __init__(self) -> None:
        super().__init__()
        self.stopped_in: list[str] = []
        self.loop_ended: list[str] = []
        Echo.made.append(self)

    def on_receive(self, message: Any) -> Any:
        if message == "stop now":
            self.stop_now()
            return "stopping"
        return threading.current_thread().name

    def on_stop(self) -> None:
        self.stopped_in.append(threading.current_thread().name)

    def on_loop_ended(self) -> None:
        self.loop_ended.append(threading.current_thread().name)


@pytest.fixture
def refs() -> Iterator[list[pykka.ActorRef[Any]]]:
    """The refs a test started; stopped after it (none is in the registry)."""
    started: list[pykka.ActorRef[Any]] = []
    yield started
    for ref in started:
        if ref.is_alive():
            ref.stop(block=False)
    Echo.made.clear()


def actor_of(ref: pykka.ActorRef[Any]) -> Any:
    """The actor behind ``ref`` (the last one made)."""
    actor = Echo.made[-1]
    assert actor.actor_ref is ref
    return actor


def test_create_actor_inbox_is_a_simple_queue(refs: list[pykka.ActorRef[Any]]) -> None:
    ref = Echo.start()
    refs.append(ref)
    # SimpleQueue's put is reentrant: a stop() from a signal handler cannot deadlock.
    assert isinstance(ref.actor_inbox, queue.SimpleQueue)
    assert "get" not in vars(ref.actor_inbox)  # the C method: nothing added per message
    assert ref.ask("who", timeout=BOUND).startswith("Echo")


def test_start_leaves_the_actor_out_of_the_registry(refs: list[pykka.ActorRef[Any]]) -> None:
    ref = Echo.start()
    refs.append(ref)
    assert ref not in pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(timeout=BOUND)  # an application's clean-up
    assert ref.is_alive()
    assert ref.ask("who", timeout=BOUND)


class InCaller(Echo):
    loop_in_caller = True


def test_start_actor_loop_waits_for_a_caller_thread(refs: list[pykka.ActorRef[Any]]) -> None:
    before = {thread.ident for thread in threading.enumerate()}
    ref = InCaller.start()
    refs.append(ref)
    assert {thread.ident for thread in threading.enumerate()} == before  # no thread started
    future = ref.ask("who", block=False)
    actor = actor_of(ref)
    caller = threading.Thread(target=actor.run_loop_here, name="the-caller")
    caller.start()
    assert future.get(timeout=BOUND) == "the-caller"
    ref.stop(timeout=BOUND)
    caller.join(BOUND)
    assert not caller.is_alive()
    assert actor.loop_ended == ["the-caller"]


def _blocked_in_the_inbox(thread_id: int) -> bool:
    """Whether the thread waits in ``_actor_loop_running`` on the inbox's ``get``
    (in the main thread, the ``get`` that wakes for signals)."""
    frame = sys._current_frames().get(thread_id)
    if frame is not None and frame.f_code.co_name == "_get_waking_for_signals":
        return True
    if frame is None or frame.f_code.co_name != "_actor_loop_running":
        return False
    lines, first = inspect.getsourcelines(frame.f_code)
    return "actor_inbox.get()" in lines[frame.f_lineno - first]


def test_actor_loop_resumes_after_an_interruption(refs: list[pykka.ActorRef[Any]]) -> None:
    assert threading.current_thread() is threading.main_thread(), "signals reach the main thread"
    ref = InCaller.start()
    refs.append(ref)
    actor = actor_of(ref)
    main = threading.get_ident()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    def poke() -> None:
        deadline = threading.Event()
        while not _blocked_in_the_inbox(main):
            if deadline.wait(0.005) or not ref.is_alive():
                return
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        poker = threading.Thread(target=poke)
        poker.start()
        with pytest.raises(KeyboardInterrupt):
            actor.run_loop_here()
        poker.join(BOUND)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert ref.is_alive()  # pykka's own loop would have stopped every actor
    assert actor.loop_ended == []
    answer = ref.ask("who", block=False)
    stopped = threading.Thread(target=ref.stop, kwargs={"timeout": BOUND})
    stopped.start()
    actor.run_loop_here(resume=True)
    stopped.join(BOUND)
    assert answer.get(timeout=BOUND) == threading.current_thread().name
    assert not ref.is_alive()
    assert actor.loop_ended == [threading.current_thread().name]
    assert actor.stopped_in == [threading.current_thread().name]


def test_actor_loop_in_its_own_thread_tells_when_it_ended(
        refs: list[pykka.ActorRef[Any]]) -> None:
    ref = Echo.start()
    refs.append(ref)
    actor = actor_of(ref)
    thread = ref.ask("who", timeout=BOUND)
    ref.stop(timeout=BOUND)
    assert actor.actor_stopped.wait(BOUND)
    for running in threading.enumerate():
        if running.name == thread:
            running.join(BOUND)
    assert actor.loop_ended == [thread]


class Guarded(Echo):
    def __init__(self) -> None:
        super().__init__()
        self.refused = 0
        self.obey = False

    def on_receive(self, message: Any) -> Any:
        if message == "obey":
            self.obey = True
            return None
        return super().on_receive(message)

    def allow_stop(self) -> bool:
        return self.obey

    def stop_refused(self) -> None:
        self.refused += 1


def test_handle_receive_refuses_a_stop_the_actor_does_not_allow(
        refs: list[pykka.ActorRef[Any]]) -> None:
    ref = Guarded.start()
    refs.append(ref)
    actor = actor_of(ref)
    ref.stop(timeout=BOUND)  # refused: answered, but the actor goes on
    assert ref.is_alive()
    assert actor.refused == 1
    assert ref.ask("who", timeout=BOUND)
    ref.ask("obey", timeout=BOUND)
    ref.stop(timeout=BOUND)
    assert not ref.is_alive()
    assert actor.refused == 1


def test_stop_now_stops_without_handling_what_is_left(refs: list[pykka.ActorRef[Any]]) -> None:
    ref = InCaller.start()
    refs.append(ref)
    actor = actor_of(ref)
    first = ref.ask("stop now", block=False)
    left = ref.ask("who", block=False)
    actor.run_loop_here()  # returns: the actor stopped itself
    assert first.get(timeout=BOUND) == "stopping"
    with pytest.raises(pykka.ActorDeadError):
        left.get(timeout=BOUND)
    assert actor.stopped_in == [threading.current_thread().name]
    assert actor.loop_ended == [threading.current_thread().name]


def test_a_loop_in_the_main_thread_runs_a_signal_handler_that_no_wait_saw(
        refs: list[pykka.ActorRef[Any]]) -> None:
    """A signal whose C handler ran while the main thread already waited for
    its next message (here: delivered to another thread, as when it lands just
    before the wait begins) still has its Python handler run, within
    ``SIGNAL_CHECK``: the handler's ``stop()`` ends the loop."""
    assert threading.current_thread() is threading.main_thread(), "signals reach the main thread"
    ref = InCaller.start()
    refs.append(ref)
    actor = actor_of(ref)
    main = threading.get_ident()
    rescued = threading.Event()

    def on_signal(*_: object) -> None:
        ref.stop(block=False)

    def poke() -> None:
        idle = threading.Event()
        while not _blocked_in_the_inbox(main):
            if idle.wait(0.005) or not ref.is_alive():
                return
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # this thread, not main
        if not actor.actor_stopped.wait(BOUND):
            rescued.set()
            ref.stop(block=False)  # end the loop, so the test fails instead of hanging

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        poker = threading.Thread(target=poke)
        poker.start()
        actor.run_loop_here()
        poker.join(BOUND)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not rescued.is_set(), "the signal's handler never ran while the loop waited"
    assert not ref.is_alive()
    assert "get" not in vars(actor.actor_inbox)  # the inbox's own get again
