"""Messages the server's actors send each other."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from dovecote._handling import Job
    from dovecote.drivers.base import IncomingMessage

    from ._listener import ListenerSpec


@dataclasses.dataclass(frozen=True, slots=True)
class Poll:
    """A listener's note to itself: poll once more."""


POLL = Poll()


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Messages a listener took, for the dispatcher."""

    messages: list[IncomingMessage]


@dataclasses.dataclass(frozen=True, slots=True)
class Completed:
    """``count`` messages finished outside a job (endpoint actor, bad input)."""

    count: int
    ok: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Jobs:
    """Work for a worker."""

    jobs: list[Job]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerIdle:
    """A worker finished its jobs: how many messages, how many failed."""

    worker: pykka.ActorRef[Any]
    count: int
    failed: int


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerAdded:
    """The server started a listener actor for ``spec``: supervise it."""

    listener: pykka.ActorRef[Any]
    spec: ListenerSpec


@dataclasses.dataclass(frozen=True, slots=True)
class RemoveListener:
    """Stop the listener actors of ``spec``."""

    spec: ListenerSpec


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerCrashed:
    """A listener's driver failed beyond its own retries."""

    listener: pykka.ActorRef[Any]
    spec: ListenerSpec
    attempt: int
    error: str


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerPaused:
    """A listener stopped polling (after ``Shutdown``) and waits for ``Finish``."""

    listener: pykka.ActorRef[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    """Everything a listener took is settled: clean up and stop."""


FINISH = Finish()


@dataclasses.dataclass(frozen=True, slots=True)
class StopServer:
    """Stop gracefully: listeners first, then in-flight work, then the rest."""
