"""``amqp1://`` (alias ``qpid://``): AMQP 1.0 through python-qpid-proton
(see :mod:`._driver` for the design)."""

from ._address import PLANS, AddressPlan, plan_named
from ._driver import Amqp1Driver
from ._listener import Amqp1IncomingMessage, Amqp1Listener

# Named by their public path (in reprs, errors and `dovecote url`).
for _cls in (Amqp1Driver, Amqp1IncomingMessage, Amqp1Listener, AddressPlan):
    _cls.__module__ = __name__
del _cls

__all__ = ["PLANS", "AddressPlan", "Amqp1Driver", "Amqp1IncomingMessage", "Amqp1Listener",
           "plan_named"]
