"""``oslo_messaging.notify.dispatcher``: what a notification endpoint returns."""

from ...notify._handler import NotificationResult

__all__ = ["NotificationResult"]
