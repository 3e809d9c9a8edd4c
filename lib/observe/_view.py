"""What observing code needs to know of a server, and nothing more.

Metrics, traces, the control endpoint, the probes and the test helpers read a
server; the server (:class:`dovecote.actors.MessageHandlingServer`) lives above
them in the house, so they name it through this protocol instead of importing
it.
"""

from __future__ import annotations

import datetime
from typing import Any, Protocol

__all__ = ["ServerView"]


class ServerView(Protocol):
    """A message handling server as seen from outside."""

    #: The name its events and metrics carry.
    name: str

    @property
    def running(self) -> bool:
        """Whether it has started and not yet finished stopping."""

    @property
    def in_flight(self) -> int:
        """Messages taken from the transports and not finished yet."""

    def mailbox_depths(self) -> dict[str, int]:
        """Messages waiting in its actors' mailboxes, per kind of actor."""

    def actors(self) -> list[dict[str, Any]]:
        """One record per actor."""

    def events(
        self, *, actor: str | None = None, kind: str | None = None, msg_id: str | None = None,
        since: float | str | datetime.datetime | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Its actors' recent events in time order."""
