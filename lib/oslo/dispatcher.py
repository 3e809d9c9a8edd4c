"""``oslo_messaging.dispatcher``: the base of dispatchers, for type checks.

dovecote's dispatchers do not inherit from it (servers are built by
``get_rpc_server`` and the listener factories, not from a dispatcher
object); it exists so code that names it imports.
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["DispatcherBase"]


class DispatcherBase(abc.ABC):
    """A dispatcher hands incoming messages to endpoints."""

    @abc.abstractmethod
    def dispatch(self, incoming: Any) -> Any:
        """Handle ``incoming``."""
