"""``oslo_messaging.notify.logger``: a :mod:`logging` handler that sends
every record as a ``logrecord`` notification of the record's level."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from oslo_config import cfg

from ..transport import get_notification_transport
from .notifier import Notifier

__all__ = ["LoggingNotificationHandler"]

_LEVELS = {"WARNING": "warn", "WARN": "warn", "DEBUG": "debug", "INFO": "info",
           "ERROR": "error", "CRITICAL": "critical", "AUDIT": "audit", "SAMPLE": "sample"}


class LoggingNotificationHandler(logging.Handler):
    """Sends each record to ``url`` (a transport URL, read with the global
    ``cfg.CONF``) as a notification whose priority is the record's level and
    whose payload holds the record's fields (``exc_info`` as text)."""

    CONF = cfg.CONF

    def __init__(self, url: str, publisher_id: str | None = None, driver: str | None = None,
                 topic: str | None = None, serializer: Any = None) -> None:
        super().__init__()
        self.transport = get_notification_transport(self.CONF, url)
        self.notifier = Notifier(self.transport, publisher_id=publisher_id, driver=driver,
                                 serializer=serializer, topics=[topic] if topic else None)

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record``; a level with no notification priority is dropped."""
        method = _LEVELS.get(record.levelname)
        if method is None:
            return
        exc_info = ("".join(traceback.format_exception(*record.exc_info))
                    if record.exc_info else None)
        getattr(self.notifier, method)(None, "logrecord", {
            "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
            "exc_info": exc_info, "pathname": record.pathname, "lineno": record.lineno,
            "msg": record.getMessage(), "funcName": record.funcName, "thread": record.thread,
            "processName": record.processName, "process": record.process,
            "extra": getattr(record, "extra", None),
        })
