"""``oslo_messaging.notify.filter``: :class:`NotificationFilter`."""

from ...notify._filter import NotificationFilter

__all__ = ["NotificationFilter"]
