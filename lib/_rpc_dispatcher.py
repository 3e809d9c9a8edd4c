"""Finds the endpoint method a request names and runs it.

The work is split for the actor runtime: :meth:`RPCDispatcher.resolve` is
cheap and runs in the dispatcher actor (so requests to an actor endpoint
reach its mailbox in arrival order); :meth:`Route.invoke` runs the method
wherever the executor puts it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pykka
import pykka.messages

from ._endpoints import (
    DefaultRPCAccessPolicy,
    RPCAccessPolicyBase,
    actor_ref_of,
    endpoint_methods,
    endpoint_target,
)
from ._errors import NoSuchMethod, UnsupportedVersion
from ._rpc_client import version_is_compatible
from ._serializer import NoOpSerializer, Serializer

__all__ = ["BadRequest", "Completion", "RPCDispatcher", "Route"]

#: Called with ``(result, exception)`` once an invocation is over.
Completion = Callable[[Any, BaseException | None], None]
_INVOKE_ATTR = "_dovecote_invoke"


class BadRequest(ValueError):
    """A request that is well-formed JSON but not a valid RPC request."""


class Route:
    """One resolved request: the method to call and its arguments."""

    __slots__ = ("actor_ref", "args", "ctxt", "func", "method")

    def __init__(
        self, method: str, func: Callable[..., Any], actor_ref: pykka.ActorRef[Any] | None,
        ctxt: Any, args: dict[str, Any],
    ) -> None:
        self.method = method
        self.func = func
        self.actor_ref = actor_ref
        self.ctxt = ctxt
        self.args = args

    def invoke(self) -> Any:
        """Run the method here; a ``TypeError`` from wrong argument names says which."""
        try:
            return self.func(self.ctxt, **self.args)
        except TypeError as exc:
            raise _argument_error(self.func, self.method, self.args, exc) from exc

    def invoke_in_actor(self, done: Completion) -> None:
        """Queue the call in the endpoint actor's mailbox; ``done`` runs in the
        actor's thread when the method returns or raises."""
        assert self.actor_ref is not None
        self.actor_ref.tell(pykka.messages.ProxyCall(
            attr_path=(_INVOKE_ATTR,), args=(self, done), kwargs={}
        ))


def _argument_error(
    func: Callable[..., Any], method: str, args: Mapping[str, Any], exc: TypeError
) -> TypeError:
    """Reword a ``TypeError`` raised by the call itself (not inside the method)."""
    if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
        return exc
    try:
        params = list(inspect.signature(func).parameters.values())[1:]  # after ctxt
    except (TypeError, ValueError):
        return exc
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return exc
    names = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    unexpected = sorted(set(args) - names)
    missing = [p.name for p in params if p.default is inspect.Parameter.empty
               and p.kind not in (inspect.Parameter.VAR_POSITIONAL,) and p.name not in args]
    problems = ([f"unexpected {', '.join(map(repr, unexpected))}"] if unexpected else []) + (
        [f"missing {', '.join(map(repr, missing))}"] if missing else [])
    if not problems:
        return exc
    accepted = ", ".join(sorted(names)) or "no arguments"
    return TypeError(f"wrong arguments for RPC method {method!r}: {'; '.join(problems)} "
                     f"(it takes {accepted})")


def _actor_invoker(actor: pykka.Actor) -> Callable[[Route, Completion], None]:
    """The function injected into an endpoint actor: runs a route on the actor
    and never lets an exception (even ``SystemExit``) reach pykka, which would
    stop every actor."""

    def invoke(route: Route, done: Completion) -> None:
        try:
            result = route.func(actor, route.ctxt, **route.args)
        except TypeError as exc:
            done(None, _argument_error(route.func, route.method, route.args, exc))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as a failure
            done(None, exc)
        else:
            done(result, None)

    return invoke


class RPCDispatcher:
    """Routes requests to endpoints by namespace, version and method name."""

    def __init__(
        self, endpoints: Iterable[Any], *, serializer: Serializer | None = None,
        access_policy: RPCAccessPolicyBase | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.serializer = serializer or NoOpSerializer()
        policy = access_policy or DefaultRPCAccessPolicy()
        # (namespace, method) -> [(version, func, actor_ref)], in endpoint order
        self._routes: dict[tuple[str | None, str], list[
            tuple[str, Callable[..., Any], pykka.ActorRef[Any] | None]]] = {}
        self._versions: dict[str | None, list[str]] = {}
        for endpoint in self.endpoints:
            target = endpoint_target(endpoint)
            version = target.version or "1.0"
            ref = actor_ref_of(endpoint)
            if ref is not None:
                # ProxyGetAttr with an empty path answers the actor object itself.
                actor = ref.ask(pykka.messages.ProxyGetAttr(attr_path=()), block=True)
                ref.ask(pykka.messages.ProxySetAttr(
                    attr_path=(_INVOKE_ATTR,), value=_actor_invoker(actor)
                ))
            for namespace in target.accepted_namespaces:
                self._versions.setdefault(namespace, []).append(version)
                for name, func in endpoint_methods(endpoint, policy).items():
                    self._routes.setdefault((namespace, name), []).append((version, func, ref))

    def resolve(self, ctxt: Mapping[str, Any], message: Mapping[str, Any]) -> Route:
        """The route for a request, or :class:`BadRequest`, :class:`NoSuchMethod`
        or :class:`UnsupportedVersion` saying why there is none."""
        method = message.get("method")
        if not isinstance(method, str) or not method:
            raise BadRequest("the request names no method (key 'method' is missing or empty)")
        args = message.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            msg = f"'args' of method {method!r} is a {type(args).__name__}, not an object"
            raise BadRequest(msg)
        namespace = message.get("namespace")
        version = message.get("version") or "1.0"
        if not isinstance(version, str):
            version = str(version)
        try:
            for route_version, func, ref in self._routes.get((namespace, method), ()):
                if version_is_compatible(route_version, version):
                    context = self.serializer.deserialize_context(dict(ctxt))
                    call_args = {
                        str(key): self.serializer.deserialize_entity(context, value)
                        for key, value in args.items()
                    }
                    return Route(method, func, ref, context, call_args)
            compatible = any(
                version_is_compatible(v, version) for v in self._versions.get(namespace, ())
            )
        except ValueError:
            raise BadRequest(f"version {version!r} is not of the form 'major.minor'") from None
        if compatible:
            raise NoSuchMethod(method)
        raise UnsupportedVersion(version, method=method)
