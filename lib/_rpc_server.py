"""RPC servers: the request handler and :func:`get_rpc_server`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from . import _wire
from ._endpoints import RPCAccessPolicyBase
from ._errors import ExpectedException, NoSuchMethod, UnsupportedVersion
from ._handling import Done, Handler, HeartbeatScheduler, Job, actor_log
from ._rpc_dispatcher import BadRequest, Route, RPCDispatcher
from ._serializer import Serializer

if TYPE_CHECKING:
    from ._target import Target
    from ._transport import Transport
    from .actors import MessageHandlingServer
    from .drivers.base import IncomingMessage

__all__ = ["RPCHandler", "get_rpc_server"]

log = structlog.get_logger("dovecote.rpc")


class RPCHandler(Handler):
    """Answers requests: resolves them in the dispatcher, runs them in a job
    (or in the endpoint actor), replies, and logs one line per request."""

    kind = "rpc"

    def __init__(self, dispatcher: RPCDispatcher) -> None:
        self.dispatcher = dispatcher
        self.log_fields: dict[str, Any] = {}
        self.log: Any = log

    def bind(self, log_fields: dict[str, Any], heartbeats: HeartbeatScheduler) -> None:
        super().bind(log_fields, heartbeats)
        self.log = log.bind(**log_fields)  # bound once: the per-request lines stay cheap

    def prepare(self, messages: Sequence[IncomingMessage], done: Done) -> list[Job]:
        jobs: list[Job] = []
        for incoming in messages:
            incoming.acknowledge()  # RPC requests: at most once
            started = time.monotonic()
            if incoming.error is not None:
                self._reject(incoming, BadRequest(f"malformed message: {incoming.error}"),
                             started, outcome="malformed")
                done(1, False)
                continue
            try:
                route = self.dispatcher.resolve(incoming.ctxt, incoming.message)
            except (BadRequest, NoSuchMethod, UnsupportedVersion) as exc:
                self._reject(incoming, exc, started, outcome="rejected")
                done(1, False)
                continue
            if route.actor_ref is not None:
                self._start_in_actor(incoming, route, started, done)
            else:
                jobs.append(Job(self._job(incoming, route, started)))
        return jobs

    def _job(self, incoming: IncomingMessage, route: Route, started: float) -> Any:
        def run() -> bool:
            token = self._watch(incoming)
            try:
                result = route.invoke()
            except BaseException as exc:  # noqa: BLE001 - becomes a failure reply
                return self._finish(incoming, route, started, token, None, exc)
            return self._finish(incoming, route, started, token, result, None)

        return run

    def _start_in_actor(
        self, incoming: IncomingMessage, route: Route, started: float, done: Done
    ) -> None:
        token = self._watch(incoming)

        ref = route.actor_ref
        assert ref is not None
        logger = self.log.bind(actor=ref.actor_class.__name__, actor_urn=ref.actor_urn)

        def finished(result: Any, exc: BaseException | None) -> None:
            done(1, self._finish(incoming, route, started, token, result, exc, logger))

        try:
            route.invoke_in_actor(finished)
        except Exception as exc:  # noqa: BLE001 - the actor is dead: answer the caller
            finished(None, exc)

    def _watch(self, incoming: IncomingMessage) -> object:
        interval = incoming.call_monitor_timeout
        if interval is None or not incoming.wants_reply:
            return None
        return self.heartbeats.track(incoming, interval / 2)

    def _finish(  # noqa: PLR0917 - private, called from two places
        self, incoming: IncomingMessage, route: Route, started: float, token: object,
        result: Any, exc: BaseException | None, logger: Any = None,
    ) -> bool:
        log = logger if logger is not None else actor_log(self.log)
        if token is not None:
            self.heartbeats.untrack(token)
        duration_ms = round((time.monotonic() - started) * 1000, 3)
        fields = {"msg_id": incoming.msg_id, "method": route.method, "duration_ms": duration_ms,
                  **incoming.origin}
        if exc is None:
            if incoming.wants_reply:
                try:
                    result = self.dispatcher.serializer.serialize_entity(route.ctxt, result)
                    incoming.reply(result)
                    log.debug("reply.sent", msg_id=incoming.msg_id)
                except (TypeError, ValueError) as bad:
                    bad_result = TypeError(
                        f"the result of RPC method {route.method!r} cannot be sent: {bad}")
                    log.error("dispatch.failed", **fields,
                              outcome="unserializable_result", error=str(bad))
                    self._reply_failure(incoming, bad_result, log=log)
                    return False
            log.debug("dispatch.ok", **fields, outcome="ok")
            return True
        if isinstance(exc, ExpectedException):
            exc = exc.exc_info[1]
            log.info("dispatch.failed", **fields, outcome="expected_error",
                     error=repr(exc))
        elif isinstance(exc, Exception):
            log.error("dispatch.failed", **fields, outcome="error",
                      error=repr(exc), exc_info=exc)
        else:
            log.error("dispatch.failed", **fields, outcome="aborted",
                      error=repr(exc), note="the endpoint raised a BaseException; "
                      "the server keeps serving")
        if incoming.wants_reply:
            self._reply_failure(incoming, exc, log=log)
        return False

    def _reject(self, incoming: IncomingMessage, exc: Exception, started: float, *,
                outcome: str) -> None:
        method = incoming.message.get("method") if incoming.message else None
        log = actor_log(self.log)
        log.warning("dispatch.failed", msg_id=incoming.msg_id, **incoming.origin,
                    method=method if isinstance(method, str) else None, outcome=outcome,
                    error=str(exc),
                    duration_ms=round((time.monotonic() - started) * 1000, 3))
        if incoming.wants_reply:
            # The caller gets bad input as a ValueError, which it rebuilds as its own.
            answer = ValueError(str(exc)) if isinstance(exc, BadRequest) else exc
            self._reply_failure(incoming, answer, traceback=False, log=log)

    def _reply_failure(self, incoming: IncomingMessage, exc: BaseException, *,
                       traceback: bool = True, log: Any = None) -> None:
        failure = _wire.serialize_failure(exc, None if traceback else [])
        try:
            incoming.reply(failure=failure)
        except Exception as error:  # noqa: BLE001 - logged; the server keeps serving
            (log or self.log).error("reply.failed", msg_id=incoming.msg_id, error=str(error))


def get_rpc_server(
    transport: Transport, target: Target, endpoints: Iterable[Any], *,
    executor: str = "threading", serializer: Serializer | None = None,
    access_policy: RPCAccessPolicyBase | None = None, max_workers: int = 8,
    max_in_flight: int = 512, name: str | None = None,
) -> MessageHandlingServer:
    """An RPC server for ``target`` on ``transport`` (add more with ``listen``).

    ``executor="threading"``: ``start()`` returns and methods run on
    ``max_workers`` worker actors. ``executor="blocking"``: ``start()``
    blocks and methods run in the thread that called it, until ``stop()``.
    At most ``max_in_flight`` requests are taken from the transport and not
    yet finished; the rest wait at the broker.
    """
    from .actors import MessageHandlingServer

    dispatcher = RPCDispatcher(endpoints, serializer=serializer, access_policy=access_policy)
    server = MessageHandlingServer(
        RPCHandler(dispatcher), executor=executor, max_workers=max_workers,
        max_in_flight=max_in_flight, name=name or str(target.server or target.topic),
        endpoints=dispatcher.endpoints,
    )
    server.listen(transport, target)
    return server
