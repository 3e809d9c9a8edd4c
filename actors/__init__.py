"""dovecote's actor runtime: listener, dispatcher and worker actors on pykka."""

from ._base import DovecoteActor
from ._dispatcher import DispatcherActor
from ._flow import CreditGate
from ._listener import ListenerActor
from ._server import EXECUTORS, MessageHandlingServer
from ._spec import ListenerSpec
from ._worker import WorkerActor

__all__ = [
    "EXECUTORS",
    "CreditGate",
    "DispatcherActor",
    "DovecoteActor",
    "ListenerActor",
    "ListenerSpec",
    "MessageHandlingServer",
    "WorkerActor",
]
