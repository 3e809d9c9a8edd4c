"""How this face runs servers: oslo's executor names on dovecote's executors,
and the worker count from ``[DEFAULT] executor_thread_pool_size``."""

from __future__ import annotations

import warnings
from typing import Any

from ._errors import ExecutorLoadFailure

__all__ = ["DEFAULT_POOL_SIZE", "executor_name", "pool_size"]

#: oslo.messaging's default ``executor_thread_pool_size``.
DEFAULT_POOL_SIZE = 64


def executor_name(executor: str | None) -> str:
    """dovecote's executor for oslo's ``executor`` argument: ``None`` and
    ``"threading"`` run on worker actors; ``"eventlet"`` does too, with a
    :class:`DeprecationWarning` (oslo.messaging 18 deprecates it and dovecote
    has no green threads); ``"blocking"`` is dovecote's executor run in the
    thread that calls ``start()``."""
    if executor is None or executor == "threading":
        return "threading"
    if executor == "eventlet":
        warnings.warn(
            "the eventlet executor is deprecated (as in oslo.messaging 18); dovecote runs "
            "the server on threads (executor='threading'): pass that instead",
            DeprecationWarning, stacklevel=3,
        )
        return "threading"
    if executor == "blocking":
        return "blocking"
    raise ExecutorLoadFailure(executor, "use None, 'threading' or 'blocking' "
                                        "('eventlet' runs on threads, deprecated)")


def pool_size(transport: Any) -> int:
    """Worker actors per server: the transport's ``executor_thread_pool_size``."""
    conf = getattr(transport, "conf", None)
    size = getattr(conf, "executor_thread_pool_size", None) if conf is not None else None
    return int(size) if size else DEFAULT_POOL_SIZE
