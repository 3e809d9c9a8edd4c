"""``oslo_messaging.notify.log_handler``: a :mod:`logging` handler that
publishes each record it gets as an ``error_notification``."""

from __future__ import annotations

import logging
from typing import Any

from oslo_config import cfg

from .. import _optdefs
from ..transport import get_notification_transport
from .notifier import Notifier

__all__ = ["LoggingErrorNotificationHandler", "PublishErrorsHandler"]


class LoggingErrorNotificationHandler(logging.Handler):
    """Sends records as ``error_notification`` notifications (publisher
    ``error.publisher``) on the transport of the global ``cfg.CONF``. Give it
    an ERROR level to publish errors only. Nothing is sent while ``log`` is
    one of the notification drivers: the log driver would log it again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transport = get_notification_transport(cfg.CONF)
        self._notifier = Notifier(self._transport, publisher_id="error.publisher")

    def emit(self, record: logging.LogRecord) -> None:
        """Publish ``record``'s message."""
        drivers = self._transport.conf[_optdefs.NOTIFICATIONS_GROUP].driver
        if "log" in drivers:
            return
        self._notifier.error({}, "error_notification", {"error": str(record.msg)})


PublishErrorsHandler = LoggingErrorNotificationHandler
