"""Messages the server's actors send each other."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from ..drivers.base import IncomingMessage
    from ._flow import InFlight
    from ._spec import ListenerSpec


@dataclasses.dataclass(frozen=True, slots=True)
class Poll:
    """A listener's note to itself: poll once more (or, drained, keep its
    connection serviced while what it took is finished)."""


POLL = Poll()


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Messages a listener took, for the dispatcher; ``source`` counts them
    until they are finished, so the listener knows when it may close."""

    messages: list[IncomingMessage]
    source: InFlight


@dataclasses.dataclass(frozen=True, slots=True)
class Completed:
    """``count`` messages finished outside a job (endpoint actor, bad input)."""

    count: int
    ok: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Work:
    """Wakes an idle worker: jobs wait in the shared queue."""


WORK = Work()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerIdle:
    """A worker of a stopping server ran out of jobs (what it finished is
    counted in the shared work queue)."""


WORKER_IDLE = WorkerIdle()


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
    """A listener's driver failed beyond its own retries; it stops taking and
    drains, and ``healthy_for`` says how long it had run well."""

    listener: pykka.ActorRef[Any]
    spec: ListenerSpec
    attempt: int
    error: str
    healthy_for: float


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerDone:
    """A listener stopped taking, everything it took is finished, and its
    driver listener is closed: it is gone."""

    listener: pykka.ActorRef[Any]


@dataclasses.dataclass(frozen=True, slots=True)
class StopServer:
    """Stop gracefully: listeners first, then in-flight work, then the rest."""
