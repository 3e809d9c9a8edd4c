"""``memory://NAME``: an in-process broker, the embedded default.

It models the part of AMQP that oslo.messaging's wire format uses: topic and
fanout exchanges with exact routing keys, named queues shared by competing
consumers, per-listener auto-delete fanout queues, the default exchange for
replies, message expiry, requeue with a redelivery count, and dead-letter
queues. Bodies are JSON text, decoded by the same function as on RabbitMQ,
so results and arguments travel exactly as they would over a broker and bad
input is judged the same way; the ``oslo.version`` envelope is left out since
these bodies never leave the process (an enveloped body put in a queue is
understood too). Receivers block on one condition variable and wake when a
message arrives: nothing sleeps.
"""


from ._broker import MemoryBroker, StoredMessage, get_broker
from ._driver import MemoryDriver, MemoryIncomingMessage, MemoryListener

__all__ = [
    "MemoryBroker",
    "MemoryDriver",
    "MemoryIncomingMessage",
    "MemoryListener",
    "StoredMessage",
    "get_broker",
]
