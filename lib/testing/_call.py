"""``call_endpoint``: one request through the server's real dispatch path, no transport.

The request is built and encoded as a client builds it, decoded by the same
function the drivers use, and handed to an :class:`~dovecote.rpc._server.RPCHandler`
over a :class:`~dovecote.rpc._dispatcher.RPCDispatcher`, as a server does; an
in-memory message captures the reply, which is decoded and rebuilt as
:meth:`dovecote.RPCClient.call` rebuilds it. Nothing of dispatch is written
again here, so what a test sees is what a caller would see.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _wire
from .._endpoints import RPCAccessPolicyBase
from .._errors import MessagingTimeout
from .._serializer import NoOpSerializer, Serializer
from ..drivers import unpack
from ..drivers._decoding import decode_reply
from ..drivers.base import IncomingMessage
from ..rpc._dispatcher import RPCDispatcher
from ..rpc._server import RPCHandler

__all__ = ["call_endpoint"]

#: The reply queue a captured request names (it never reaches a broker).
_REPLY_Q = "dovecote-testing-call-endpoint"


class _CapturedRequest(IncomingMessage):
    """A request that was never on a broker: its reply is kept here."""

    __slots__ = ("answer", "answered")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answer: str | None = None
        self.answered = threading.Event()

    def encode_reply(self, body: dict[str, Any]) -> str:
        return _wire.dumps(body)  # JSON, as on every transport (raises for what JSON cannot hold)

    def publish_reply(self, reply_q: str, data: str) -> None:
        if not self.answered.is_set():
            self.answer = data
            self.answered.set()

    def acknowledge(self) -> None:
        """Nothing to settle: there is no broker."""

    def requeue(self) -> None:
        """Requests are never requeued."""

    def dead_letter(self, reason: str) -> str:
        return ""

    def release(self) -> None:
        """Nothing to give back: there is no broker."""


def _no_done(_count: int, _ok: bool) -> None:  # noqa: FBT001 - the Done signature
    """Work finished outside a job (an endpoint actor): the reply says how."""


def call_endpoint(
    endpoint: Any, method: str, /, ctxt: Any = None, *,
    serializer: Serializer | None = None, access_policy: RPCAccessPolicyBase | None = None,
    namespace: str | None = None, version: str | None = None,
    allowed_remote_exmods: Iterable[str] | None = None, args: Mapping[str, Any] | None = None,
    timeout: float = 5.0, **kwargs: Any,
) -> Any:
    """Call ``method`` of ``endpoint`` (a plain object, or a pykka ``ActorRef`` or
    proxy) the way a server would serve ``client.call(ctxt, method, **kwargs)``,
    without a transport; return the result or raise what the caller would get.

    Everything on the way is the real code: the access policy (default
    :class:`~dovecote.DefaultRPCAccessPolicy`), the namespace and version check
    against the endpoint's ``target`` (``namespace`` and ``version`` are what
    the client's target would name; ``None``, the default, sends none, which
    servers take as no namespace and version ``1.0``), ``serializer`` (used on
    both sides, as client and server share one), ``@expected_exceptions``,
    and JSON on the way in and out (a tuple comes back as a list, arguments
    JSON cannot hold raise ``TypeError`` here as they would in ``call``).

    A failure is rebuilt by :func:`dovecote._wire.deserialize_failure` as
    ``RPCClient.call`` does. ``allowed_remote_exmods`` defaults to the module
    of the exception the endpoint raised, so ``pytest.raises(MyError)`` works
    for a module-level ``MyError`` (the caller gets a ``MyError_Remote``
    subclass whose text carries the remote traceback); pass ``()`` to see what
    a caller that allows no module gets (``dovecote.RemoteError``).
    ``NoSuchMethod`` and ``UnsupportedVersion`` always come back as dovecote's
    classes. Method arguments whose names are taken by these options go in
    ``args``. A plain endpoint runs in this thread; an endpoint actor in its
    own, waited for at most ``timeout`` seconds (then ``MessagingTimeout``).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    from ..actors._heartbeat import HeartbeatTimer

    serializer = serializer or NoOpSerializer()
    context = serializer.serialize_context(ctxt)
    arguments = {**(args or {}), **kwargs}
    message: dict[str, Any] = {
        "method": method,
        "args": {k: serializer.serialize_entity(context, v) for k, v in arguments.items()},
    }
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    body = _wire.dumps(_wire.pack_request(context, message, msg_id=_wire.new_id(),
                                          reply_q=_REPLY_Q))
    request = _CapturedRequest(**unpack(body, notifications=False)._asdict())

    handler = RPCHandler(RPCDispatcher([endpoint], serializer=serializer,
                                       access_policy=access_policy))
    watcher = HeartbeatTimer(name="call_endpoint")  # watches an endpoint actor that stops
    handler.bind({"server": "call_endpoint"}, watcher)
    try:
        for job in handler.prepare([request], _no_done):
            job.run()
        if not request.answered.wait(timeout):
            msg = f"call_endpoint: no reply from {method!r} within {timeout}s"
            raise MessagingTimeout(msg)
    finally:
        watcher.stop()
    reply = decode_reply(request.answer) or {}
    failure = reply.get("failure")
    if failure:
        if allowed_remote_exmods is None:
            allowed_remote_exmods = _raised_module(failure)
        raise _wire.deserialize_failure(failure, allowed_remote_exmods)
    return serializer.deserialize_entity(context, reply.get("result"))


def _raised_module(failure: Any) -> tuple[str, ...]:
    """The module of the exception a failure describes (none if unreadable)."""
    try:
        module = _wire.loads(failure).get("module")
    except (ValueError, AttributeError, TypeError):
        return ()
    return (module,) if isinstance(module, str) else ()
