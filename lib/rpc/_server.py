"""RPC servers: the request handler and :func:`get_rpc_server`.

The handler's :meth:`RPCHandler.prepare` runs in the dispatcher actor and does
no more than hand each request on: to a job (a worker, or the blocking
executor's loop), or, for an endpoint actor, to that actor's mailbox in
arrival order. Everything that runs user code (serializers, the endpoint
method) or talks to the broker (replies) runs there, inside one boundary:
whatever is raised, the request ends in exactly one reply (for a call whose
reply queue is known) and one log line, and the server goes on.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pykka

from .. import _wire
from .._endpoints import RPCAccessPolicyBase, run_in_actor
from .._errors import ExpectedException
from .._handling import Done, Handler, HeartbeatScheduler, Job, trace_id
from .._serializer import Serializer
from ..drivers.base import UnsendableReply
from ..observe import _probes
from ..observe._control import ControlEndpoint, PingEndpoint
from ..observe._fields import clip, describe, elapsed_ms, log_field
from ..observe._logging import ActorLog, History, actor_log, get_logger
from ._dispatcher import BadRequest, Found, RPCDispatcher, WrongArguments

if TYPE_CHECKING:
    from .._target import Target
    from .._transport import Transport
    from ..actors import MessageHandlingServer
    from ..drivers.base import IncomingMessage

__all__ = ["RPCHandler", "get_rpc_server"]

log = get_logger(__name__)
#: The fields of the two events every request makes.
_STARTED = ("msg_id", "method")
_OK = ("msg_id", "method", "duration_ms", "outcome")


class _Call:
    """One request on its way through a job or an endpoint actor."""

    __slots__ = ("ctxt", "found", "incoming", "probed", "reported", "started", "token")

    def __init__(self, incoming: IncomingMessage, found: Found | Exception | None) -> None:
        self.incoming = incoming
        self.found = found
        self.started = time.monotonic()
        self.ctxt: Any = None  # the deserialized context, once there is one
        self.token: object = None  # the call-monitor heartbeat, while it runs
        self.probed: _probes.Started | None = None  # probes told of the dispatch
        self.reported = False  # probes told how it ended

    @property
    def method(self) -> str | None:
        if isinstance(self.found, Found):
            return self.found.method
        return log_field(self.incoming.message.get("method"), 120)

    def fields(self) -> dict[str, Any]:
        incoming = self.incoming
        return {"msg_id": trace_id(incoming), "method": self.method, **incoming.origin,
                "duration_ms": elapsed_ms(self.started)}


class RPCHandler(Handler):
    """Answers requests: runs them in a job (or the endpoint actor), replies,
    and logs one line per request."""

    kind = "rpc"

    def __init__(self, dispatcher: RPCDispatcher) -> None:
        self.dispatcher = dispatcher
        self.log_fields: dict[str, Any] = {}
        self.log = ActorLog(log)
        self._endpoint_logs: dict[str, ActorLog] = {}

    def bind(
        self, log_fields: dict[str, Any], heartbeats: HeartbeatScheduler,
        endpoint_history: Any = lambda _ref: None,
    ) -> None:
        super().bind(log_fields, heartbeats, endpoint_history)
        self.log = ActorLog(log.bind(**log_fields))  # bound once: per-request lines stay cheap

    def _endpoint_log(self, ref: pykka.ActorRef[Any]) -> ActorLog:
        """The log of an endpoint actor: its identity, and its history."""
        found = self._endpoint_logs.get(ref.actor_urn)
        if found is None:
            history: History | None = self.endpoint_history(ref)
            found = self._endpoint_logs[ref.actor_urn] = self.log.bind(
                history, actor=ref.actor_class.__name__, actor_urn=ref.actor_urn)
        return found

    # -- in the dispatcher ------------------------------------------------------
    def prepare(self, messages: Sequence[IncomingMessage], done: Done) -> list[Job]:
        jobs: list[Job] = []
        for incoming in messages:
            call = _Call(incoming, None)
            try:
                incoming.acknowledge()  # RPC requests: at most once
                if self.dispatcher.has_actors and incoming.error is None:
                    call.found = self._lookup(incoming)
                    if isinstance(call.found, Found) and call.found.actor_ref is not None:
                        self._start_in_actor(call, done)
                        continue
            except Exception as exc:  # noqa: BLE001 - never stop the hub: answered in a job
                call.found = exc
            jobs.append(Job(functools.partial(self._run, call)))
        return jobs

    def _lookup(self, incoming: IncomingMessage) -> Found | Exception:
        try:
            return self.dispatcher.lookup(incoming.message)
        except Exception as exc:  # noqa: BLE001 - BadRequest, NoSuchMethod, UnsupportedVersion
            return exc

    def abandon(self, incoming: IncomingMessage, error: BaseException) -> None:
        with contextlib.suppress(Exception):
            incoming.acknowledge()  # at most once, even when dovecote failed
        self._reply_failure(incoming, RuntimeError(
            f"the server could not handle the request ({describe(error)})"), traceback=False)

    # -- in a job ---------------------------------------------------------------
    def _run(self, call: _Call) -> bool:
        return self._guarded(call, lambda: self._handle(call))

    def _guarded(self, call: _Call, step: Any) -> bool:
        """Run ``step``; if dovecote itself fails in it (a bug, or a user object
        whose ``__str__`` raises while being logged), still answer the caller."""
        try:
            return bool(step())
        except Exception as exc:  # noqa: BLE001 - the boundary: a bug must not lose the call
            with contextlib.suppress(Exception):
                actor_log(self.log).error("dispatch.failed", **call.fields(),
                                          outcome="error", error=describe(exc))
            self._report(call, "error", error=exc)
            with contextlib.suppress(Exception):
                self.abandon(call.incoming, exc)
            return False

    def _handle(self, call: _Call) -> bool:
        incoming = call.incoming
        if incoming.error is not None:
            self._reject(call, BadRequest(f"malformed message: {incoming.error}"),
                         outcome="malformed")
            return False
        found = call.found if call.found is not None else self._lookup(incoming)
        call.found = found
        if isinstance(found, Exception):
            self._reject(call, found, outcome="rejected")
            return False
        self._started(call, actor_log(self.log))
        carrier = _probes.take_carrier(incoming.ctxt)
        if _probes.probes:
            call.probed = _probes.dispatch_started(
                self.owner, "rpc", found.method, ((incoming, carrier, trace_id(incoming)),))
        try:
            route = self.dispatcher.prepare_call(found, incoming.ctxt)
        except BaseException as exc:  # noqa: BLE001 - the serializer's error goes to the caller
            return self._finish(call, None, exc, stage="deserialize")
        call.ctxt = route.ctxt
        call.token = self._watch(incoming)
        try:
            result = route.invoke()
        except BaseException as exc:  # noqa: BLE001 - becomes a failure reply
            return self._finish(call, None, exc)
        return self._finish(call, result, None)

    # -- endpoint actors ----------------------------------------------------------
    def _start_in_actor(self, call: _Call, done: Done) -> None:
        found = call.found
        assert isinstance(found, Found)
        assert found.actor_ref is not None
        ref = found.actor_ref
        logger = self._endpoint_log(ref)
        stage: list[str] = []

        def work(actor: Any) -> Any:  # in the endpoint actor's thread
            self._started(call, logger)
            carrier = _probes.take_carrier(call.incoming.ctxt)
            if _probes.probes:
                call.probed = _probes.dispatch_started(self.owner, "rpc", found.method, (
                    (call.incoming, carrier, trace_id(call.incoming)),))
            stage.append("deserialize")
            route = self.dispatcher.prepare_call(found, call.incoming.ctxt)
            call.ctxt = route.ctxt
            stage[0] = "endpoint"
            return route.invoke(actor)

        claimed = threading.Lock()  # finished once: by the actor, or by the watch

        def finished(result: Any, exc: BaseException | None) -> None:
            if not claimed.acquire(blocking=False):
                return
            self.heartbeats.untrack(watch)
            where = stage[0] if stage else "endpoint"
            done(1, self._guarded(call, lambda: self._finish(
                call, result, exc, logger, stage=where)))

        def gone() -> None:  # pykka drops what waits in a stopped actor's mailbox
            finished(None, pykka.ActorDeadError(
                f"endpoint actor {ref.actor_class.__name__} ({ref.actor_urn}) stopped "
                "before it handled the request"))

        call.token = self._watch(call.incoming)
        watch = self.heartbeats.watch(ref, gone)
        try:
            run_in_actor(ref, work, finished)
        except Exception as exc:  # noqa: BLE001 - the actor is gone: answer the caller
            finished(None, exc)

    @staticmethod
    def _started(call: _Call, log: ActorLog) -> None:
        if log.records_debug and not call.incoming.quiet:
            found = call.found
            log.debug_values("dispatch.started", _STARTED, (
                trace_id(call.incoming), found.method if isinstance(found, Found) else call.method))

    # -- outcomes ---------------------------------------------------------------
    def _watch(self, incoming: IncomingMessage) -> object:
        if not incoming.wants_reply:
            return None
        interval = incoming.call_monitor_timeout
        if interval is None:
            raw = incoming.message.get("_timeout")
            if raw is not None:
                actor_log(self.log).warning(
                    "message.bad_timeout", msg_id=incoming.msg_id, timeout=clip(raw),
                    reason="_timeout is not a number of seconds within [1, 86400]; ignored")
            return None
        return self.heartbeats.track(incoming, interval / 2)

    def _finish(
        self, call: _Call, result: Any, exc: BaseException | None,
        logger: ActorLog | None = None, *, stage: str = "endpoint",
    ) -> bool:
        log: ActorLog = logger if logger is not None else actor_log(self.log)
        incoming = call.incoming
        if call.token is not None:
            self.heartbeats.untrack(call.token)
        if exc is None:
            if incoming.wants_reply:
                exc, stage = self._send_result(call, result, log)
                if stage == "unsent":
                    self._report(call, "unsent", result)
                    return False
            if exc is None:
                self._report(call, "ok", result)
                if log.records_debug and not incoming.quiet:
                    if log.logs_debug:
                        log.debug("dispatch.ok", **call.fields(), outcome="ok")
                    else:  # the history alone: the cheapest record
                        found = call.found
                        log.record_values("dispatch.ok", _OK, (
                            trace_id(incoming),
                            found.method if isinstance(found, Found) else call.method,
                            elapsed_ms(call.started), "ok"))
                return True
        fields = call.fields()
        if stage != "endpoint":
            fields["stage"] = stage
        if isinstance(exc, WrongArguments):  # the caller's fault: one warning, as _reject
            answer = TypeError(str(exc))
            log.warning("dispatch.failed", **fields, outcome="rejected", error=str(exc))
            self._reply_failure(incoming, answer, traceback=False, log=log)
            self._report(call, "rejected", error=answer)
            return False
        if isinstance(exc, ExpectedException):
            exc = exc.exc_info[1]
            outcome = "expected_error"
            log.info("dispatch.failed", **fields, outcome=outcome, error=describe(exc))
        elif stage == "reply":
            outcome = "unserializable_result"
            log.error("dispatch.failed", **fields, outcome=outcome, error=describe(exc))
        elif isinstance(exc, Exception):
            outcome = "error"
            log.error("dispatch.failed", **fields, outcome=outcome, error=describe(exc),
                      exc_info=exc)
        else:
            outcome = "aborted"
            log.error("dispatch.failed", **fields, outcome=outcome, error=describe(exc),
                      note="the endpoint raised a BaseException; the server keeps serving")
        self._reply_failure(incoming, exc, log=log)
        self._report(call, outcome, error=exc)
        return False

    def _report(self, call: _Call, outcome: str, result: Any = None,
                error: BaseException | None = None) -> None:
        """Tell the probes how ``call`` ended (once; nothing when none listens)."""
        if call.reported or (call.probed is None and not _probes.probes):
            return
        call.reported = True
        found = call.found
        name, endpoints = ((found.method, (found.endpoint,)) if isinstance(found, Found)
                           else (_probes.UNKNOWN, ()))
        _probes.dispatch_finished(call.probed, _probes.Dispatched(
            self.owner, "rpc", name, outcome, time.monotonic() - call.started, result, error,
            endpoints))

    def _send_result(
        self, call: _Call, result: Any, log: ActorLog
    ) -> tuple[BaseException | None, str]:
        """Serialize and send the result: ``(None, "sent")``, ``(None, "unsent")``
        when the broker could not take it (logged), or the error for the caller
        and the stage that raised it."""
        incoming = call.incoming
        try:
            result = self.dispatcher.serializer.serialize_entity(call.ctxt, result)
        except BaseException as exc:  # noqa: BLE001 - the serializer's error goes to the caller
            return exc, "serialize"
        try:
            incoming.reply(result)
        except UnsendableReply as exc:
            return TypeError(f"the result of RPC method {call.method!r} cannot be sent: "
                             f"{exc}"), "reply"
        except Exception as exc:  # noqa: BLE001 - the broker refused it: logged
            log.error("reply.failed", msg_id=incoming.msg_id, error=describe(exc))
            return None, "unsent"
        if log.records_debug and not incoming.quiet:
            log.debug("reply.sent", msg_id=incoming.msg_id)
        return None, "sent"

    def _reject(self, call: _Call, exc: Exception, *, outcome: str) -> None:
        log = actor_log(self.log)
        log.warning("dispatch.failed", **call.fields(), outcome=outcome, error=str(exc))
        # The caller gets bad input as a ValueError, which it rebuilds as its own.
        answer = ValueError(str(exc)) if isinstance(exc, BadRequest) else exc
        self._reply_failure(call.incoming, answer, traceback=False, log=log)
        self._report(call, outcome, error=answer)

    def _reply_failure(self, incoming: IncomingMessage, exc: BaseException, *,
                       traceback: bool = True, log: Any = None) -> None:
        if not incoming.wants_reply:
            return
        failure = _wire.serialize_failure(exc, None if traceback else [])
        try:
            incoming.reply(failure=failure)
        except Exception as error:  # noqa: BLE001 - logged; the server keeps serving
            (log or self.log).error("reply.failed", msg_id=incoming.msg_id,
                                    error=describe(error))


def get_rpc_server(
    transport: Transport, target: Target, endpoints: Iterable[Any],
    executor: str = "threading", serializer: Serializer | None = None,
    access_policy: RPCAccessPolicyBase | None = None, *, max_workers: int = 8,
    max_in_flight: int = 512, name: str | None = None, control: bool = True,
    event_history: int = 200, server_cls: type[MessageHandlingServer] | None = None,
) -> MessageHandlingServer:
    """An RPC server for ``target`` on ``transport`` (add more with ``listen``).

    ``executor="threading"``: ``start()`` returns and methods run on
    ``max_workers`` worker actors. ``executor="blocking"``: ``start()``
    blocks and methods run in the thread that called it, until ``stop()``.
    At most ``max_in_flight`` requests are taken from the transport and not
    yet finished; the rest wait at the broker. ``control`` serves the control
    endpoint (namespace ``dovecote.control``: ``ping``, ``info``, ``describe``,
    ``actors``, ``events``, and oslo.messaging's ``oslo_rpc_server_ping``); each actor
    keeps its last ``event_history`` events (0: none). ``server_cls`` is the
    class built (a :class:`~dovecote.actors.MessageHandlingServer` subclass).
    """
    from ..actors import MessageHandlingServer

    server_cls = server_cls or MessageHandlingServer
    endpoints = list(endpoints)
    control_endpoint = ControlEndpoint() if control else None
    if control_endpoint is not None:
        endpoints += [control_endpoint, PingEndpoint()]
    dispatcher = RPCDispatcher(endpoints, serializer=serializer, access_policy=access_policy)
    server = server_cls(
        RPCHandler(dispatcher), executor=executor, max_workers=max_workers,
        max_in_flight=max_in_flight, name=name or str(target.server or target.topic),
        endpoints=dispatcher.endpoints, event_history=event_history,
    )
    if control_endpoint is not None:
        control_endpoint.server = server
        control_endpoint.exposed = dispatcher.exposed
    server.listen(transport, target)
    return server
