"""The one place dovecote relies on pykka's private hooks.

pykka's public API starts an actor in a thread of its own, registers it in
``pykka.ActorRegistry`` and lets anyone stop it. A server needs a little more,
and gets it by overriding five of pykka's private methods here, and nowhere
else (``tests/actors/test_pykka_hooks.py`` checks each against the installed
pykka, so an upgrade that changes one fails there first):

* ``_create_actor_inbox``: a ``queue.SimpleQueue`` (reentrant ``put``, so
  ``server.stop()`` may run in a signal handler; the C implementation, cheaper
  per message). While the loop runs in the main thread, its wait for the next
  message wakes every :data:`SIGNAL_CHECK` seconds: CPython runs a signal's
  handler between bytecodes of the main thread, and a signal that lands just
  before the wait begins (after the GIL was let go) would otherwise wait for
  the next message, perhaps for ever;
* ``_start_actor_loop``: started without registering (an application's
  ``ActorRegistry.stop_all()`` leaves servers running), or not started at all
  when the loop is to run in a caller's thread (the blocking executor);
* ``_actor_loop`` (with ``_actor_loop_running`` and ``_actor_loop_teardown``):
  run in the caller's thread, resumed after an interruption, and told when
  it ends;
* ``_handle_receive``: a stop request from anyone but the owner is refused
  (pykka stops every actor when one raises ``BaseException``);
* ``_stop``: stop at once, without running the loop again.
"""

from __future__ import annotations

import functools
import queue
import threading
from typing import Any, ClassVar

import pykka
import pykka.messages

__all__ = ["SIGNAL_CHECK", "HookedActor"]

#: How often (seconds) a loop in the main thread looks for a signal's handler
#: to run while no message arrives.
SIGNAL_CHECK = 0.1


class _Inbox(queue.SimpleQueue[Any]):
    """pykka's inbox; a subclass only so that one instance's ``get`` can be
    replaced (see :meth:`HookedActor.run_loop_here`) while others keep the C
    method, with no cost per message."""


def _get_waking_for_signals(inbox: _Inbox) -> Any:
    """``inbox.get()``, waking every :data:`SIGNAL_CHECK` seconds so that the
    main thread runs a pending signal handler (which may post to the inbox)."""
    get = queue.SimpleQueue.get
    while True:
        try:
            return get(inbox, True, SIGNAL_CHECK)
        except queue.Empty:
            continue


class HookedActor(pykka.ThreadingActor):
    """A pykka threading actor with the hooks above, as plain methods to
    override or call: :meth:`start`, :meth:`run_loop_here`, :meth:`stop_now`,
    :meth:`allow_stop`, :meth:`stop_refused`, :meth:`on_loop_ended`."""

    use_daemon_thread: ClassVar[bool] = True
    #: Whether the loop runs in the thread that calls :meth:`run_loop_here`
    #: instead of a thread of its own.
    loop_in_caller: bool = False

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return _Inbox()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """Start the actor without registering it in ``pykka.ActorRegistry``
        (with :attr:`loop_in_caller`, its loop waits for :meth:`run_loop_here`)."""
        actor = cls(*args, **kwargs)
        actor._start_actor_loop()
        ref: pykka.ActorRef[Any] = actor.actor_ref
        return ref

    def _start_actor_loop(self) -> None:
        if not self.loop_in_caller:
            super()._start_actor_loop()

    def run_loop_here(self, *, resume: bool = False) -> None:
        """Run the actor's loop in the calling thread until it stops;
        ``resume``: again, after an interruption (a ``KeyboardInterrupt``) left it."""
        inbox = self.actor_inbox
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and isinstance(inbox, _Inbox):
            inbox.get = functools.partial(_get_waking_for_signals, inbox)  # type: ignore[method-assign]
        try:
            if resume:
                self._actor_loop_running()
                self._actor_loop_teardown()
            else:
                self._actor_loop()
        finally:
            if in_main and isinstance(inbox, _Inbox):
                del inbox.get
            if self.actor_stopped.is_set():
                self.on_loop_ended()

    def _actor_loop(self) -> None:
        try:
            super()._actor_loop()
        finally:
            if not self.loop_in_caller:
                self.on_loop_ended()

    def on_loop_ended(self) -> None:
        """The loop ended (in its own thread, or the caller's once stopped)."""

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, pykka.messages._ActorStop) and not self.allow_stop():
            self.stop_refused()
            return None
        return super()._handle_receive(message)

    def allow_stop(self) -> bool:
        """Whether a stop request (``ref.stop()``, ``ActorRegistry.stop_all()``)
        is obeyed now; the default obeys."""
        return True

    def stop_refused(self) -> None:
        """A stop request was refused (see :meth:`allow_stop`)."""

    def stop_now(self) -> None:
        """Stop at once: mark the actor stopped and run ``on_stop``, without
        handling what is left in the mailbox."""
        self._stop()
