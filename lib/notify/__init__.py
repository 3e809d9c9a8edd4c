"""Notifications: the notifier, filters, listeners and dead letters.

Mirrors ``oslo_messaging.notify``: :class:`Notifier` sends; the listener
factories build servers on the actor runtime whose :class:`NotificationHandler`
acknowledges, requeues or parks each notification; what was parked is read
back or replayed with :func:`take_dead_letters` and :func:`replay_dead_letters`.
"""

from ._dead_letters import DeadLetter, replay_dead_letters, take_dead_letters
from ._filter import NotificationFilter
from ._handler import PRIORITIES, NotificationHandler, NotificationResult
from ._listener import get_batch_notification_listener, get_notification_listener
from ._notifier import Notifier, get_test_notifications, reset_test_notifications

__all__ = [
    "PRIORITIES",
    "DeadLetter",
    "NotificationFilter",
    "NotificationHandler",
    "NotificationResult",
    "Notifier",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_test_notifications",
    "replay_dead_letters",
    "reset_test_notifications",
    "take_dead_letters",
]
