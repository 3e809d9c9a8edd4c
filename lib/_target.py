"""Where a message goes, or which messages a server takes: :class:`Target`."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Target"]


@dataclasses.dataclass(frozen=True)
class Target:
    """An address for RPC and notifications, as in oslo.messaging.

    ``exchange`` defaults to the transport's ``control_exchange``; ``topic``
    names a service; ``server`` one instance of it; ``fanout`` sends a cast to
    every server on the topic; ``namespace`` and ``version`` select endpoints.
    Fields may be given by position in oslo.messaging's order, too.
    """

    exchange: str | None = None
    topic: str | None = None
    namespace: str | None = None
    version: str | None = None
    server: str | None = None
    fanout: bool | None = None
    legacy_namespaces: tuple[str, ...] | None = None
    accepted_namespaces: tuple[str | None, ...] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        legacy = tuple(self.legacy_namespaces or ())
        object.__setattr__(self, "legacy_namespaces", legacy)
        object.__setattr__(self, "accepted_namespaces", (self.namespace, *legacy))

    def __call__(self, **kwargs: Any) -> Target:
        """Return a copy with the given fields replaced (oslo.messaging spelling)."""
        return self.replace(**kwargs)

    def replace(self, **kwargs: Any) -> Target:
        """Return a copy with the given fields replaced."""
        fields = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init
        }
        fields.update(kwargs)
        return Target(**fields)

    def __str__(self) -> str:
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if f.init and f.name != "legacy_namespaces" and getattr(self, f.name) is not None
        ]
        return "<Target " + ", ".join(parts) + ">"
