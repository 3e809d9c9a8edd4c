"""``oslo_messaging.target``: a :class:`Target` that, as oslo.messaging's,
can be assigned to (``target.version = "7.6"``) and called for a copy.

It is a :class:`dovecote.Target`, so every dovecote function takes it. Like
oslo's, it hashes by identity (it is mutable) and compares by its fields.
"""

from __future__ import annotations

from typing import Any

from .. import _target

__all__ = ["Target"]

_COPIED = ("exchange", "topic", "namespace", "version", "server", "fanout")


class Target(_target.Target):
    """An address for RPC and notifications with oslo.messaging's semantics."""

    def __init__(
        self, exchange: str | None = None, topic: str | None = None,
        namespace: str | None = None, version: str | None = None, server: str | None = None,
        fanout: bool | None = None, legacy_namespaces: list[str] | None = None,
    ) -> None:
        super().__init__(exchange, topic, namespace, version, server, fanout,
                         tuple(legacy_namespaces or ()))

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in ("namespace", "legacy_namespaces") and hasattr(self, "legacy_namespaces"):
            legacy = tuple(self.legacy_namespaces or ())
            object.__setattr__(self, "accepted_namespaces", (self.namespace, *legacy))

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)

    def __call__(self, **kwargs: Any) -> Target:
        """A copy with ``kwargs`` replaced (legacy namespaces are not copied, as in oslo)."""
        for name in _COPIED:
            kwargs.setdefault(name, getattr(self, name))
        return Target(**kwargs)

    def replace(self, **kwargs: Any) -> Target:
        """A copy with ``kwargs`` replaced (legacy namespaces kept)."""
        kwargs.setdefault("legacy_namespaces", list(self.legacy_namespaces or ()))
        return self(**kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _target.Target):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name)
                   for name in (*_COPIED, "accepted_namespaces"))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name in _COPIED if getattr(self, name)]
        return "<Target " + ", ".join(parts) + ">"

    __str__ = __repr__
