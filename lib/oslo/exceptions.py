"""``oslo_messaging.exceptions``: the base errors, dovecote's own classes."""

from .._errors import (
    InvalidTarget,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingTimeout,
)

__all__ = [
    "InvalidTarget",
    "MessageDeliveryFailure",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingTimeout",
]
