"""The base of every dovecote actor: bound logs, counters, owner-only stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias

import pykka

from ..observe._logging import ActorLog, History, get_logger, set_actor_log
from ._pykka import HookedActor

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


class DovecoteActor(HookedActor):
    """A pykka actor that logs with its identity bound and stops only when its
    owner (the server) says so.

    pykka stops every registered actor when any actor's code raises a
    ``BaseException`` (``ActorRegistry.stop_all()``); a server must survive an
    endpoint that raises ``SystemExit``, so a dovecote actor answers a stop
    request that is not its owner's ``Shutdown`` by logging it and going on
    (and is never registered: see :mod:`._pykka`).
    """

    kind: ClassVar[str] = "actor"

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

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Shutdown):
            self._owner_stop = True
            self.on_shutdown()
            return None
        return self.on_message(message)

    def on_message(self, message: Any) -> Any:
        """A message for this kind of actor (anything but the owner's ``Shutdown``)."""
        return super().on_receive(message)

    def allow_stop(self) -> bool:
        return self._owner_stop

    def stop_refused(self) -> None:
        self.log.warning("actor.stop_ignored",
                         reason="only the server that owns this actor stops it")

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
