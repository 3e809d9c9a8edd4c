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
    import pykka

    from .drivers.base import IncomingMessage

__all__ = [
    "Done",
    "Handler",
    "HeartbeatScheduler",
    "Job",
    "actor_log",
    "clip",
    "describe",
    "log_field",
    "set_actor_log",
]

_thread = threading.local()


def set_actor_log(log: Any) -> None:
    """Called by an actor in its own thread (``None`` when it stops): what a
    handler logs in this thread then carries that actor's bound identity."""
    _thread.log = log


def actor_log(default: Any) -> Any:
    """The logger of the actor running in this thread, else ``default``."""
    return getattr(_thread, "log", None) or default


def describe(exc: BaseException, limit: int = 500) -> str:
    """``repr(exc)`` for a log line or a reason, cut to ``limit`` characters;
    never raises, even for an exception whose ``__repr__`` does."""
    try:
        text = repr(exc)
    except Exception:  # noqa: BLE001 - user code: fall back to the class name
        text = f"{type(exc).__name__}(<unprintable>)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(value: object, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: how a field a peer sent is
    quoted in a log line or an error, never the whole of it."""
    # Never the contents of a list or dict: its type only.
    text = repr(value[: limit + 1]) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def log_field(value: object, limit: int = 255) -> str | None:
    """A field a peer sent (an event type, a publisher id), as a log line may
    carry it: text cut to ``limit`` characters, or only the type of anything else."""
    if value is None or isinstance(value, str):
        return value if value is None or len(value) <= limit else value[: limit - 3] + "..."
    return f"<{type(value).__name__}>"


#: ``done(count, ok)``: ``count`` messages finished outside a job.
Done = Callable[[int, bool], None]


class Job:
    """A unit of work: ``run()`` settles ``count`` messages and says if all
    went well. ``source`` (set by the runtime) is told when they are finished."""

    __slots__ = ("count", "run", "source")

    def __init__(self, run: Callable[[], bool], count: int = 1) -> None:
        self.run = run
        self.count = count
        self.source: Any = None


class HeartbeatScheduler(abc.ABC):
    """Sends call-monitor heartbeats for calls while they run, and watches
    endpoint actors that hold requests."""

    @abc.abstractmethod
    def track(self, incoming: IncomingMessage, interval: float) -> object:
        """Heartbeat ``incoming`` every ``interval`` seconds; returns a token."""

    @abc.abstractmethod
    def watch(self, ref: pykka.ActorRef[Any], on_gone: Callable[[], None]) -> object:
        """Call ``on_gone`` (once) if the actor behind ``ref`` stops; returns a token."""

    @abc.abstractmethod
    def untrack(self, token: object) -> None:
        """Stop the heartbeats or the watch of ``token``."""


class Handler(abc.ABC):
    """Turns incoming messages into jobs."""

    #: Whether endpoints get batches: then a listener gathers up to
    #: ``batch_size`` messages, handing them over after ``batch_timeout``
    #: seconds at the latest (``None``: only once ``batch_size`` arrived).
    batched: bool = False
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
        """Jobs for ``messages``; cheap, runs in the dispatcher actor, runs no
        user code, and never raises."""

    @abc.abstractmethod
    def abandon(self, incoming: IncomingMessage, error: BaseException) -> None:
        """Settle ``incoming`` after dovecote itself failed to handle it (a bug):
        answer a call with a failure, give a notification back. Never raises."""
