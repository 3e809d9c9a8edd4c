"""``oslo_messaging.notify``: notifiers, listeners and log handlers."""

from .dispatcher import NotificationResult
from .filter import NotificationFilter
from .listener import (
    get_batch_notification_listener,
    get_notification_listener,
    get_notification_transport,
)
from .log_handler import LoggingErrorNotificationHandler, PublishErrorsHandler
from .logger import LoggingNotificationHandler
from .notifier import Notifier

__all__ = [
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
]
