"""The RPC client: ``call``, ``cast``, fanout, ``call_async`` and ``prepare``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pykka

from .. import _wire
from .._errors import InvalidTarget, MessagingTimeout, RPCVersionCapError
from .._serializer import NoOpSerializer, Serializer
from ..drivers.base import CALL_MONITOR_RANGE, PendingReply
from ..observe import _autotrace, _probes
from ..observe._logging import get_logger

if TYPE_CHECKING:
    from .._target import Target
    from .._transport import Transport

__all__ = ["RPCClient", "get_rpc_client"]

log = get_logger(__name__)
_NOT_SET: Any = object()


def _monitor(value: float | None) -> float | None:
    """A valid ``call_monitor_timeout`` (``None`` or 0: no call monitor)."""
    if not value:
        return None
    low, high = CALL_MONITOR_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        msg = (f"call_monitor_timeout must be between {low:g} and {high:g} seconds, or None "
               f"(servers ignore other values and would send no heartbeats), not {value!r}")
        raise ValueError(msg)
    return float(value)


def _version_tuple(version: str) -> tuple[int, int]:
    major, _, minor = str(version).partition(".")
    return int(major), int(minor or 0)


@functools.lru_cache(maxsize=1024)
def version_is_compatible(imp_version: str, version: str) -> bool:
    """Whether an endpoint at ``imp_version`` can serve a request for ``version``:
    same major, and a minor no higher than the endpoint's."""
    imp_major, imp_minor = _version_tuple(imp_version)
    major, minor = _version_tuple(version)
    return major == imp_major and minor <= imp_minor


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options:
    target: Target
    timeout: float | None
    version_cap: str | None
    retry: int | None
    call_monitor_timeout: float | None
    transport_options: Mapping[str, Any]


class RPCClient:
    """Invokes methods on RPC servers listening on a target.

    ``call`` waits for the result, ``cast`` does not, ``call_async`` returns a
    pykka :class:`~pykka.Future`. ``prepare()`` returns a client with some
    options overridden (``server``, ``version``, ``fanout``, ``timeout`` ...).
    """

    def __init__(
        self, transport: Transport, target: Target, timeout: float | None = None,
        version_cap: str | None = None, serializer: Serializer | None = None,
        retry: int | None = None, call_monitor_timeout: float | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.transport = transport
        self.serializer = serializer or NoOpSerializer()
        _autotrace.autoload()
        self._options = _Options(
            target=target, timeout=timeout, version_cap=version_cap, retry=retry,
            call_monitor_timeout=_monitor(call_monitor_timeout),
            transport_options=dict(transport_options or {}),
        )

    @property
    def target(self) -> Target:
        """The target requests go to."""
        return self._options.target

    def prepare(
        self, exchange: str | None = _NOT_SET, topic: str | None = _NOT_SET,
        namespace: str | None = _NOT_SET, version: str | None = _NOT_SET,
        server: str | None = _NOT_SET, fanout: bool | None = _NOT_SET,  # noqa: FBT001
        timeout: float | None = _NOT_SET, version_cap: str | None = _NOT_SET,
        retry: int | None = _NOT_SET, call_monitor_timeout: float | None = _NOT_SET,
        transport_options: Mapping[str, Any] | None = _NOT_SET,
    ) -> RPCClient:
        """A client sharing this one's transport, with the given options replaced."""
        target_fields = {
            name: value for name, value in (
                ("exchange", exchange), ("topic", topic), ("namespace", namespace),
                ("version", version), ("server", server), ("fanout", fanout),
            ) if value is not _NOT_SET
        }
        if call_monitor_timeout is not _NOT_SET:
            call_monitor_timeout = _monitor(call_monitor_timeout)
        other: dict[str, Any] = {
            name: value for name, value in (
                ("timeout", timeout), ("version_cap", version_cap), ("retry", retry),
                ("call_monitor_timeout", call_monitor_timeout),
                ("transport_options", transport_options),
            ) if value is not _NOT_SET
        }
        clone = object.__new__(type(self))
        clone.transport = self.transport
        clone.serializer = self.serializer
        clone._options = dataclasses.replace(
            self._options, target=self._options.target.replace(**target_fields), **other
        )
        return clone

    def can_send_version(self, version: str | None = None) -> bool:
        """Whether ``version`` (default: the target's) is within ``version_cap``."""
        version = version or self._options.target.version
        cap = self._options.version_cap
        return not (cap and version) or version_is_compatible(str(cap), str(version))

    def _message(self, ctxt: Any, method: str, kwargs: dict[str, Any]) -> tuple[
        dict[str, Any], dict[str, Any]
    ]:
        target = self._options.target
        if not target.topic:
            raise InvalidTarget("A topic is required to send a message", target)
        if target.version and not self.can_send_version():
            raise RPCVersionCapError(target.version, str(self._options.version_cap))
        context = self.serializer.serialize_context(ctxt)
        message: dict[str, Any] = {
            "method": method,
            "args": {k: self.serializer.serialize_entity(context, v) for k, v in kwargs.items()},
        }
        if target.namespace is not None:
            message["namespace"] = target.namespace
        if target.version is not None:
            message["version"] = target.version
        return context, message

    def cast(self, ctxt: Any, method: str, /, **kwargs: Any) -> None:
        """Invoke ``method`` without waiting; with ``fanout`` on every server."""
        context, message = self._message(ctxt, method, kwargs)
        opts = self._options
        if _probes.probes:
            # The id the server's events will carry, known here for the trace.
            message["_unique_id"] = unique_id = _wire.new_id()
            probe = _probes.Sending("cast", str(opts.target.topic), method,
                                    driver=self.transport.driver, target=opts.target,
                                    message_id=unique_id)
            context = probe.start(context)
            try:
                self.transport.driver.send(opts.target, context, message, retry=opts.retry,
                                           transport_options=opts.transport_options)
            except BaseException as exc:
                probe.finish(exc)
                raise
            probe.finish(None)
            return
        self.transport.driver.send(
            opts.target, context, message, retry=opts.retry,
            transport_options=opts.transport_options,
        )

    def _start_call(self, ctxt: Any, method: str, kwargs: dict[str, Any]) -> tuple[
        PendingReply, dict[str, Any], _probes.Sending | None
    ]:
        opts = self._options
        if opts.target.fanout:
            raise InvalidTarget("A call cannot be a fanout; use cast", opts.target)
        context, message = self._message(ctxt, method, kwargs)
        msg_id = _wire.new_id()
        probe = wire_context = None
        if _probes.probes:  # timed from before the call's deadline is set: never shorter
            probe = _probes.Sending("call", str(opts.target.topic), method,
                                    driver=self.transport.driver, target=opts.target,
                                    message_id=msg_id)
            wire_context = probe.start(context)
        pending = PendingReply(
            msg_id, timeout=opts.timeout, call_monitor_timeout=opts.call_monitor_timeout
        )
        driver = self.transport.driver
        driver.expect_reply(pending)
        try:
            driver.send(
                opts.target, wire_context or context, message, reply=pending,
                timeout=opts.timeout, call_monitor_timeout=opts.call_monitor_timeout,
                retry=opts.retry, transport_options=opts.transport_options,
            )
        except BaseException as exc:
            driver.forget(pending)
            if probe is not None:
                probe.finish(exc)
            raise
        pending.sent()
        return pending, context, probe

    def _finish(self, pending: PendingReply, context: dict[str, Any],
                reply: Mapping[str, Any]) -> Any:
        self.transport.driver.forget(pending)
        failure = reply.get("failure")
        if failure:
            raise _wire.deserialize_failure(
                failure, self.transport.allowed_remote_exmods,
                rebuild_dispatch_errors=self.transport.rebuild_dispatch_errors)
        return self.serializer.deserialize_entity(context, reply.get("result"))

    def call(self, ctxt: Any, method: str, /, **kwargs: Any) -> Any:
        """Invoke ``method`` and return its result (or raise the remote error)."""
        pending, context, probe = self._start_call(ctxt, method, kwargs)
        try:
            reply = pending.wait()
        except MessagingTimeout as exc:
            self.transport.driver.forget(pending)
            if probe is not None:
                probe.finish(exc)
            raise
        assert reply is not None  # patience=None waits for the outcome
        if probe is None:
            return self._finish(pending, context, reply)
        try:
            result = self._finish(pending, context, reply)
        except BaseException as exc:
            probe.finish(exc, "remote_error" if reply.get("failure") else "error")
            raise
        probe.finish(None)
        return result

    def call_async(self, ctxt: Any, method: str, /, **kwargs: Any) -> pykka.Future[Any]:
        """Invoke ``method``; return a pykka future whose ``get(timeout=...)``
        gives the result. A ``get`` timeout shorter than the call's raises
        :class:`pykka.Timeout` and leaves the call running."""
        pending, context, probe = self._start_call(ctxt, method, kwargs)
        outcome: list[Any] = []

        def _get(patience: float | None) -> Any:
            if not outcome:
                how = None
                try:
                    reply = pending.wait(patience)
                except MessagingTimeout as exc:
                    self.transport.driver.forget(pending)
                    outcome.append(exc)
                else:
                    if reply is None:
                        msg = f"{patience} seconds"
                        raise pykka.Timeout(msg)
                    try:
                        outcome.append(("ok", self._finish(pending, context, reply)))
                    except Exception as exc:  # noqa: BLE001 - the remote error, kept
                        outcome.append(exc)
                        how = "remote_error" if reply.get("failure") else "error"
                if probe is not None:
                    first = outcome[0]
                    probe.finish(first if isinstance(first, BaseException) else None, how)
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            return outcome[0][1]

        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        future.set_get_hook(_get)
        return future


def get_rpc_client(
    transport: Transport, target: Target, *, timeout: float | None = None,
    version_cap: str | None = None, serializer: Serializer | None = None,
    retry: int | None = None, call_monitor_timeout: float | None = None,
    transport_options: Mapping[str, Any] | None = None,
) -> RPCClient:
    """An :class:`RPCClient` sending to ``target`` over ``transport``.

    ``timeout``: seconds a ``call`` waits for its answer (``None``: forever);
    ``version_cap``: the highest version requests may ask for;
    ``serializer``: turns arguments, results and the context into JSON values;
    ``retry``: how often a failed send is retried (``None``: as the
    transport's ``max_retries`` says, by default until it is sent; -1: until
    it is sent; 0: never);
    ``call_monitor_timeout``: seconds of server silence a call tolerates (the
    server sends heartbeats meanwhile); ``transport_options``: per-send driver
    options (``{"at_least_once": True}``: an unroutable call fails at once).
    """
    return RPCClient(transport, target, timeout=timeout, version_cap=version_cap,
                     serializer=serializer, retry=retry,
                     call_monitor_timeout=call_monitor_timeout,
                     transport_options=transport_options)
