"""Tracing that switches itself on: the application set a global OpenTelemetry
tracer provider, and dovecote traces without being told (see
:mod:`.tracing`). Kept apart from the probes, so that they never import the
tracing module that is itself a probe."""

from __future__ import annotations

import sys

from . import _probes
from ._logging import get_logger

__all__ = ["autoload"]

log = get_logger(__name__)


def autoload() -> None:
    """Switch tracing on by itself once the application configured a global
    OpenTelemetry tracer provider: called when a transport, client or notifier
    is made and when a server starts (never per message). Costs a dictionary
    lookup when OpenTelemetry was never imported, and nothing once decided."""
    if not _probes.auto_tracing:
        return
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:
        return
    try:
        provider = otel.get_tracer_provider()
        if isinstance(provider, (otel.ProxyTracerProvider, otel.NoOpTracerProvider)):
            return
        from . import tracing
    except Exception as exc:  # noqa: BLE001 - tracing stays off; the service runs on
        _probes.auto_tracing = False
        log.error("tracing.autoload_failed", error=repr(exc)[:300])
        return
    tracing._enable_by_itself()
