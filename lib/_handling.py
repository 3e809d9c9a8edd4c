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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .drivers._decoding import MAX_ID_LENGTH

if TYPE_CHECKING:
    import pykka

    from .drivers.base import IncomingMessage
    from .observe._logging import History

__all__ = [
    "Done",
    "Handler",
    "HeartbeatScheduler",
    "Job",
    "trace_id",
]


def trace_id(incoming: IncomingMessage) -> str | None:
    """The id that follows a message through the actors' events: a call's
    ``msg_id``, else the request's ``_unique_id`` or a notification's
    ``message_id`` (kept on the message once found: every actor logs it)."""
    found = incoming.trace
    if found is not None:
        return found
    if incoming.msg_id is not None:
        found = incoming.msg_id
    else:
        message = incoming.message
        found = message.get("_unique_id") or message.get("message_id")
        if not isinstance(found, str) or len(found) > MAX_ID_LENGTH:
            return None
    incoming.trace = found
    return found


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
    #: The server this handler serves (set by the server; what probes are told).
    owner: Any = None

    def bind(
        self, log_fields: dict[str, Any], heartbeats: HeartbeatScheduler,
        endpoint_history: Callable[[Any], History | None] = lambda _ref: None,
    ) -> None:
        """Called once by the server before the first ``prepare``:
        ``endpoint_history`` gives the history an endpoint actor's events go to."""
        self.log_fields = log_fields
        self.heartbeats = heartbeats
        self.endpoint_history = endpoint_history

    @abc.abstractmethod
    def prepare(self, messages: Sequence[IncomingMessage], done: Done) -> list[Job]:
        """Jobs for ``messages``; cheap, runs in the dispatcher actor, runs no
        user code, and never raises."""

    @abc.abstractmethod
    def abandon(self, incoming: IncomingMessage, error: BaseException) -> None:
        """Settle ``incoming`` after dovecote itself failed to handle it (a bug):
        answer a call with a failure, give a notification back. Never raises."""
