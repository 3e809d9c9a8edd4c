"""Finds the endpoint method a request names, and prepares the call.

The work is split in two, so that no user code ever runs in the server's
dispatcher actor:

* :meth:`RPCDispatcher.lookup` is dovecote's own code only (a table lookup
  with the request's fields checked), total over any input, and cheap: the
  dispatcher may run it to send requests for an endpoint actor to that
  actor's mailbox in arrival order;
* :meth:`RPCDispatcher.prepare_call` runs the serializer (user code) and
  returns a :class:`Route`; it runs where the method will run (a worker, the
  blocking executor's loop, or the endpoint actor's thread).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import pykka

from .._endpoints import (
    DefaultRPCAccessPolicy,
    RPCAccessPolicyBase,
    actor_ref_of,
    endpoint_methods,
    endpoint_target,
    install_invoker,
)
from .._errors import NoSuchMethod, UnsupportedVersion
from .._serializer import NoOpSerializer, Serializer
from ..observe._control import CONTROL_NAMESPACE, Exposed, is_control_endpoint
from ..observe._fields import clip
from ._client import version_is_compatible

__all__ = ["BadRequest", "Found", "RPCDispatcher", "Route", "WrongArguments"]

#: The longest namespace or version a request may name (they key caches).
_MAX_NAME = 255
#: How many other places of a method an error text lists at most.
_PLACES_SHOWN = 5


class BadRequest(ValueError):
    """A request that is well-formed JSON but not a valid RPC request."""


class WrongArguments(TypeError):
    """The request's arguments do not fit the method: the caller's fault, so
    the server logs one warning without a traceback (the caller gets a
    ``TypeError`` with this text)."""


class Found(NamedTuple):
    """Where a request goes: the method, its function, the endpoint actor (if
    it is one), and the arguments as received."""

    method: str
    func: Callable[..., Any]
    actor_ref: pykka.ActorRef[Any] | None
    args: Mapping[str, Any]
    #: The endpoint object as given to the server (what probes report).
    endpoint: Any = None


class Route:
    """A call ready to run: the function with its deserialized context and arguments."""

    __slots__ = ("args", "ctxt", "func", "method")

    def __init__(
        self, method: str, func: Callable[..., Any], ctxt: Any, args: dict[str, Any],
    ) -> None:
        self.method = method
        self.func = func
        self.ctxt = ctxt
        self.args = args

    def invoke(self, *actor: Any) -> Any:
        """Run the method (``actor`` first for an endpoint actor's unbound
        method); a ``TypeError`` from wrong argument names says which."""
        try:
            return self.func(*actor, self.ctxt, **self.args)
        except TypeError as exc:
            wrong = _argument_error(self, 1 + len(actor), exc)
            if wrong is None:
                raise  # the method's own TypeError, with its traceback alone
            raise wrong from None  # the caller's fault: no traceback of dovecote's call


def _argument_error(route: Route, skip: int, exc: TypeError) -> WrongArguments | None:
    """Reword a ``TypeError`` raised by the call itself (not inside the method);
    the method's first ``skip`` parameters are not RPC arguments. ``None``:
    the method raised it, or what is wrong cannot be told."""
    if exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
        return None
    method, args = route.method, route.args
    try:
        params = list(inspect.signature(route.func).parameters.values())[skip:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    names = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    unexpected = sorted(set(args) - names)
    missing = [p.name for p in params if p.default is inspect.Parameter.empty
               and p.kind not in (inspect.Parameter.VAR_POSITIONAL,) and p.name not in args]
    problems = ([f"unexpected {', '.join(map(clip, unexpected[:10]))}"] if unexpected else []) + (
        [f"missing {', '.join(map(repr, missing))}"] if missing else [])
    if not problems:
        return None
    accepted = ", ".join(sorted(names)) or "no arguments"
    return WrongArguments(f"wrong arguments for RPC method {method!r}: "
                          f"{'; '.join(problems)} (it takes {accepted})")


class RPCDispatcher:
    """Routes requests to endpoints by namespace, version and method name."""

    def __init__(
        self, endpoints: Iterable[Any], serializer: Serializer | None = None,
        access_policy: RPCAccessPolicyBase | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.serializer = serializer or NoOpSerializer()
        policy = access_policy or DefaultRPCAccessPolicy()
        # (namespace, method) -> [(version, func, actor_ref, endpoint)], in endpoint order
        self._routes: dict[tuple[str | None, str], list[
            tuple[str, Callable[..., Any], pykka.ActorRef[Any] | None, Any]]] = {}
        # What tells NoSuchMethod from UnsupportedVersion, and where else a method
        # is: the application's endpoints and the control endpoints apart, so the
        # control namespace never changes what an application caller gets.
        self._versions: dict[bool, dict[str | None, list[str]]] = {False: {}, True: {}}
        self._places: dict[bool, dict[str, list[tuple[str | None, str]]]] = {False: {}, True: {}}
        #: Whether any endpoint is an actor (only then does the hub look requests up).
        self.has_actors = False
        #: The application's endpoints with the methods the policy exposes (what
        #: the control endpoint's ``describe`` shows; not the control endpoints).
        self.exposed: list[Exposed] = []
        for endpoint in self.endpoints:
            target = endpoint_target(endpoint)
            version = target.version or "1.0"
            control = is_control_endpoint(endpoint)
            ref = actor_ref_of(endpoint)
            if ref is not None:
                install_invoker(ref)
                self.has_actors = True
            methods = endpoint_methods(endpoint, policy)
            if not control:
                self.exposed.append(Exposed(
                    (ref.actor_class if ref is not None else type(endpoint)).__name__,
                    target, methods, ref is not None))
            for namespace in target.accepted_namespaces:
                self._versions[control].setdefault(namespace, []).append(version)
                for name, func in methods.items():
                    self._routes.setdefault((namespace, name), []).append(
                        (version, func, ref, endpoint))
                    places = self._places[control].setdefault(name, [])
                    if (namespace, version) not in places:
                        places.append((namespace, version))

    def lookup(self, message: Mapping[str, Any]) -> Found:
        """Where a request goes, or :class:`BadRequest`, :class:`NoSuchMethod`
        or :class:`UnsupportedVersion` saying why nowhere. Runs no user code and
        raises nothing else, whatever ``message`` holds."""
        method = message.get("method")
        if not isinstance(method, str) or not method:
            raise BadRequest("the request names no method (key 'method' is missing or empty)")
        args = message.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            msg = f"'args' of method {clip(method)} is a {type(args).__name__}, not an object"
            raise BadRequest(msg)
        namespace = message.get("namespace")
        if namespace is not None and (not isinstance(namespace, str) or len(namespace) > _MAX_NAME):
            raise BadRequest(f"'namespace' is {clip(namespace)}, not a string or null")
        version = message.get("version") or "1.0"
        if isinstance(version, (int, float)) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str) or len(version) > _MAX_NAME:
            raise BadRequest(f"'version' is {clip(version)}, not a string")
        try:
            for route_version, func, ref, endpoint in self._routes.get((namespace, method), ()):
                if version_is_compatible(route_version, version):
                    return Found(method, func, ref, args, endpoint)
            error = self._not_found(method[:_MAX_NAME], namespace, version)
        except ValueError:
            raise BadRequest(f"version {clip(version)} is not of the form 'major.minor'") from None
        raise error

    def _not_found(self, method: str, namespace: str | None,
                   version: str) -> NoSuchMethod | UnsupportedVersion:
        """What a caller gets for a request no endpoint takes: ``NoSuchMethod``
        when an endpoint of that namespace has a compatible version, else
        ``UnsupportedVersion`` (as oslo.messaging decides), saying where else
        the method is. The control endpoints count only for requests to their
        own namespace: with or without them an application caller gets the same."""
        views = (False, True) if namespace == CONTROL_NAMESPACE else (False,)
        compatible = any(version_is_compatible(known, version)
                         for view in views for known in self._versions[view].get(namespace, ()))
        hint = _elsewhere(method, [place for view in views
                                   for place in self._places[view].get(method, ())])
        if compatible:
            return NoSuchMethod(method, hint=hint)
        return UnsupportedVersion(version, method=method, hint=hint)

    def prepare_call(self, found: Found, ctxt: Mapping[str, Any]) -> Route:
        """Deserialize the context and arguments (the serializer is user code:
        whatever it raises, the caller gets)."""
        context = self.serializer.deserialize_context(dict(ctxt))
        args = {str(key): self.serializer.deserialize_entity(context, value)
                for key, value in found.args.items()}
        return Route(found.method, found.func, context, args)


def _elsewhere(method: str, places: list[tuple[str | None, str]]) -> str:
    """``method 'x' exists in namespace 'y' (version 2.0)``: where a method the
    endpoints expose is (their namespaces and versions, nothing else), or ""."""
    if not places:
        return ""
    by_namespace: dict[str | None, list[str]] = {}
    for namespace, version in places:
        by_namespace.setdefault(namespace, []).append(version)
    shown = []
    for namespace, versions in list(by_namespace.items())[:_PLACES_SHOWN]:
        where = "the default namespace" if namespace is None else f"namespace {namespace!r}"
        label = "version" if len(versions) == 1 else "versions"
        shown.append(f"{where} ({label} {', '.join(versions)})")
    more = len(by_namespace) - _PLACES_SHOWN
    return (f"method {method!r} exists in {'; '.join(shown)}"
            f"{f'; and {more} more namespaces' if more > 0 else ''}")
