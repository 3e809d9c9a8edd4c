"""What the actor runtime asks of a message handler (RPC or notifications).

The dispatcher actor calls :meth:`Handler.prepare` with each batch a listener
took; it returns jobs the executor runs (inline for ``"blocking"``, on worker
actors for ``"threading"``). Work that finishes outside a job (a request to
an endpoint actor, bad input answered at once) is reported through
``done(count, ok)``. Every message taken ends in exactly one job or one
``done`` call, which is how the server knows how many are still in flight.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .drivers.base import IncomingMessage

__all__ = ["Done", "Handler", "HeartbeatScheduler", "Job", "actor_log", "set_actor_log"]

_thread = threading.local()


def set_actor_log(log: Any) -> None:
    """Called by an actor in its own thread (``None`` when it stops): what a
    handler logs in this thread then carries that actor's bound identity."""
    _thread.log = log


def actor_log(default: Any) -> Any:
    """The logger of the actor running in this thread, else ``default``."""
    return getattr(_thread, "log", None) or default


#: ``done(count, ok)``: ``count`` messages finished outside a job.
Done = Callable[[int, bool], None]


class Job:
    """A unit of work: ``run()`` settles ``count`` messages and says if all went well."""

    __slots__ = ("count", "run")

    def __init__(self, run: Callable[[], bool], count: int = 1) -> None:
        self.run = run
        self.count = count


class HeartbeatScheduler(abc.ABC):
    """Sends call-monitor heartbeats for calls while they run."""

    @abc.abstractmethod
    def track(self, incoming: IncomingMessage, interval: float) -> object:
        """Heartbeat ``incoming`` every ``interval`` seconds; returns a token."""

    @abc.abstractmethod
    def untrack(self, token: object) -> None:
        """Stop the heartbeats of ``token``."""


class Handler(abc.ABC):
    """Turns incoming messages into jobs."""

    #: How many messages a listener should gather into one batch, and how long.
    batch_size: int = 1
    batch_timeout: float | None = None
    #: ``"rpc"`` or ``"notification"``: the listener asks the driver accordingly.
    kind: str = "rpc"
    #: For notifications: the priorities the endpoints handle, and the pool.
    priorities: tuple[str, ...] = ()
    pool: str | None = None

    def bind(self, log_fields: dict[str, Any], heartbeats: HeartbeatScheduler) -> None:
        """Called once by the server before the first ``prepare``."""
        self.log_fields = log_fields
        self.heartbeats = heartbeats

    @abc.abstractmethod
    def prepare(self, messages: Sequence[IncomingMessage], done: Done) -> list[Job]:
        """Jobs for ``messages``; cheap, runs in the dispatcher actor."""
