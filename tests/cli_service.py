"""Endpoints ``dovecote serve`` runs in the command-line tests
(``dovecote serve URL TOPIC cli_service:endpoints``)."""

from __future__ import annotations

import threading
from typing import Any


class Service:
    """Echoes, remembers what it was cast, and fails on request."""

    def __init__(self) -> None:
        self.cast_values: list[Any] = []

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def whoami(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return ctxt

    def remember(self, ctxt: dict[str, Any], value: Any) -> None:
        self.cast_values.append(value)

    def remembered(self, ctxt: dict[str, Any]) -> list[Any]:
        return self.cast_values

    def fail(self, ctxt: dict[str, Any], text: str) -> None:
        raise ValueError(text)

    def sleep(self, ctxt: dict[str, Any], seconds: float) -> None:
        """Answer after ``seconds`` (a caller with a shorter timeout gets none)."""
        threading.Event().wait(min(float(seconds), 10.0))


#: A list of endpoints.
ENDPOINTS = [Service()]


def endpoints() -> list[Any]:
    """A callable returning the endpoints."""
    return [Service()]


def broken() -> list[Any]:
    raise RuntimeError("the factory failed")
