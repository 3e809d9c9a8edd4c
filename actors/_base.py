"""The base of every dovecote actor: bound logs, counters, owner-only stop."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias

import pykka
import pykka.messages

from ..observe._logging import ActorLog, History, get_logger, set_actor_log

__all__ = ["DovecoteActor", "Shutdown", "Track", "mailbox_depth", "tell"]

#: Called with each new actor, so its server can find it (``server.actors()``).
Track: TypeAlias = "Callable[[DovecoteActor], None] | None"


def tell(ref: pykka.ActorRef[Any], message: Any) -> bool:
    """``ref.tell(message)``, unless the actor has stopped meanwhile (actors of a
    server stop on their own schedule: a late message to one is not an error)."""
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def mailbox_depth(inbox: object) -> int:
    """Messages waiting in a pykka inbox (a ``queue.Queue`` for threading actors)."""
    qsize = getattr(inbox, "qsize", None)
    return int(qsize()) if callable(qsize) else 0


class Shutdown:
    """Sent by an actor's owner: finish what is queued, then stop."""

    __slots__ = ()


SHUTDOWN = Shutdown()


class DovecoteActor(pykka.ThreadingActor):
    """A pykka actor that logs with its identity bound and stops only when its
    owner (the server) says so.

    pykka stops every registered actor when any actor's code raises a
    ``BaseException`` (``ActorRegistry.stop_all()``); a server must survive an
    endpoint that raises ``SystemExit``, so a dovecote actor answers a stop
    request that is not its owner's ``Shutdown`` by logging it and going on.
    """

    use_daemon_thread: ClassVar[bool] = True
    kind: ClassVar[str] = "actor"

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # A SimpleQueue instead of pykka's Queue: its put() is reentrant, so
        # server.stop() may run in a signal handler that interrupted this very
        # queue, and it is the C implementation, several times cheaper per message.
        return queue.SimpleQueue()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        """Start the actor without registering it in ``pykka.ActorRegistry``: an
        application's ``ActorRegistry.stop_all()`` (and pykka's own, when any
        actor raises a ``BaseException``) leaves servers running; they stop with
        ``server.stop()``."""
        actor = cls(*args, **kwargs)
        actor._start_actor_loop()
        ref: pykka.ActorRef[Any] = actor.actor_ref
        return ref

    def __init__(self, *, track: Track = None, history: int = 0, **log_fields: Any) -> None:
        super().__init__()
        self.log_fields = {"actor": type(self).__name__, "actor_urn": self.actor_urn,
                           **log_fields}
        identity = {"actor": type(self).__name__, "actor_urn": self.actor_urn,
                    "kind": self.kind, "server": log_fields.get("server")}
        #: The last ``history`` events of this actor (``server.events()``).
        self.history = History(history, identity) if history > 0 else None
        self.log = ActorLog(get_logger("dovecote.actors").bind(**self.log_fields),
                            self.history)
        if track is not None:
            track(self)
        self.handled = 0
        self.failed = 0
        self.thread: threading.Thread | None = None
        self._owner_stop = False

    def on_start(self) -> None:
        self.thread = threading.current_thread()
        self.thread.name = f"dovecote-{self.kind}-{self.actor_urn[-8:]}"
        set_actor_log(self.log)

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, Shutdown):
            self._owner_stop = True
            self.on_shutdown()
            return None
        if isinstance(message, pykka.messages._ActorStop) and not self._owner_stop:
            self.log.warning("actor.stop_ignored",
                             reason="only the server that owns this actor stops it")
            return None
        return super()._handle_receive(message)

    def on_shutdown(self) -> None:
        """Owner asked to stop; the default stops once the mailbox is handled."""
        self.stop()

    def stop(self) -> None:
        """Stop after the messages already queued (an actor may stop itself)."""
        self._owner_stop = True
        super().stop()

    def snapshot(self) -> dict[str, Any]:
        """A record for ``server.actors()``."""
        return {
            "kind": self.kind,
            "urn": self.actor_urn,
            "actor": type(self).__name__,
            "alive": self.actor_ref.is_alive(),
            "mailbox": mailbox_depth(self.actor_inbox),
            "mailbox_depth": mailbox_depth(self.actor_inbox),
            "handled": self.handled,
            "failed": self.failed,
        }
