"""Seeing what a service does: logging, each actor's event history, probes the
runtime reports to, the control endpoint, and (with their extras)
:mod:`dovecote.observe.metrics` and :mod:`dovecote.observe.tracing`, also
importable as ``dovecote.metrics`` and ``dovecote.tracing``.

This package sits low in the house: it knows servers only through the
:class:`ServerView` protocol, so drivers, actors, RPC and notifications can all
report to it.
"""

from ._logging import configure_logging

__all__ = ["configure_logging"]
