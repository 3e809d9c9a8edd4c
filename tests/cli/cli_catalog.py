"""Endpoints ``dovecote serve`` runs for the ``describe`` tests: a namespace
and version, optional and catch-all parameters, and private methods that
must never be shown (``dovecote serve URL TOPIC cli_catalog:ENDPOINTS``,
with ``tests/cli`` on ``PYTHONPATH``)."""

from __future__ import annotations

from typing import Any

import dovecote


class Compute:
    """An API in a namespace of its own, at version 2.3."""

    target = dovecote.Target(namespace="compute", version="2.3")

    def resize(self, ctxt: dict[str, Any], instance: str, flavor: str = "small",
               **extra: Any) -> str:
        """Resize an instance to another flavor.

        The rest of the docstring is not shown."""
        return f"{instance}:{flavor}"

    def reboot(self, ctxt: dict[str, Any], instance: str) -> None:
        return None

    def _secret(self, ctxt: dict[str, Any], password: str) -> str:
        return password

    def __mangled(self, ctxt: dict[str, Any]) -> None:
        return None


class Echo:
    """The default namespace, version 1.0."""

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        """Return the value."""
        return value


ENDPOINTS = [Compute(), Echo()]
