"""``oslo_messaging.rpc.dispatcher``: access policies, the dispatcher and its errors."""

from ..._endpoints import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
)
from ..._errors import ExpectedException, NoSuchMethod, UnsupportedVersion
from ...rpc._dispatcher import RPCDispatcher
from .._errors import RPCDispatcherError

__all__ = [
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCDispatcher",
    "RPCDispatcherError",
    "UnsupportedVersion",
]
