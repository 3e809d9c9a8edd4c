"""Endpoints: which methods of which objects (or pykka actors) a server exposes.

A plain object exposes its public methods defined on its class (and its own
base classes, never ``object``'s), never ``target``. A pykka ``ActorRef`` or
proxy exposes the public methods of its actor class, minus pykka's own.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pykka
import pykka.messages

from ._errors import ExpectedException
from ._target import Target
from .observe import _probes
from .observe._logging import get_logger

__all__ = [
    "Completion",
    "DefaultRPCAccessPolicy",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "RPCAccessPolicyBase",
    "actor_method",
    "actor_ref_of",
    "endpoint_counts",
    "endpoint_methods",
    "expected_exceptions",
    "expose",
    "install_invoker",
    "run_in_actor",
]

F = TypeVar("F", bound=Callable[..., Any])
#: Called with ``(result, exception)`` once work in an endpoint actor is over.
Completion = Callable[[Any, BaseException | None], None]
_INVOKE_ATTR = "_dovecote_invoke"
_RESERVED = frozenset({"target", "filter_rule"})
_PYKKA_NAMES = frozenset(dir(pykka.ThreadingActor))


def expose(func: F) -> F:
    """Mark a method callable under :class:`ExplicitRPCAccessPolicy`."""
    func.exposed = True  # type: ignore[attr-defined]
    return func


def expected_exceptions(*exceptions: type[BaseException]) -> Callable[[F], F]:
    """Declare exceptions that are part of a method's contract: the server logs
    them briefly instead of with a traceback, and the caller gets them as usual."""

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except ExpectedException:
                raise
            except exceptions as exc:
                raise ExpectedException((type(exc), exc, exc.__traceback__)) from exc

        return inner  # type: ignore[return-value]

    return decorator


class RPCAccessPolicyBase(abc.ABC):
    """Decides whether a method of an endpoint may be called remotely."""

    @abc.abstractmethod
    def is_allowed(self, endpoint: Any, method: str) -> bool:
        """Whether ``method`` of ``endpoint`` may be called remotely."""


class DefaultRPCAccessPolicy(RPCAccessPolicyBase):
    """No name starting with ``_`` (the default)."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return not method.startswith("_")


class ExplicitRPCAccessPolicy(RPCAccessPolicyBase):
    """Only methods decorated with :func:`expose`."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        func = getattr(endpoint, method, None)
        return bool(getattr(func, "exposed", False))


class LegacyRPCAccessPolicy(RPCAccessPolicyBase):
    """Everything the endpoint's class defines, private names included."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return True


def actor_ref_of(endpoint: Any) -> pykka.ActorRef[Any] | None:
    """The ``ActorRef`` behind an endpoint that is a pykka actor, else ``None``."""
    if isinstance(endpoint, pykka.ActorRef):
        return endpoint
    if isinstance(endpoint, pykka.ActorProxy):
        ref: pykka.ActorRef[Any] = endpoint.actor_ref
        return ref
    return None


def endpoint_methods(endpoint: Any, policy: RPCAccessPolicyBase) -> dict[str, Callable[..., Any]]:
    """The callable methods of ``endpoint`` by name: for an actor, the unbound
    functions of its class; for a plain object, its bound methods."""
    ref = actor_ref_of(endpoint)
    cls = ref.actor_class if ref is not None else type(endpoint)
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or (ref is not None and klass.__module__.startswith("pykka")):
            continue
        for name, value in vars(klass).items():
            if name in _RESERVED or (name.startswith("__") and name.endswith("__")):
                continue
            if ref is not None and name in _PYKKA_NAMES:
                continue
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if not callable(func) or inspect.isclass(func):
                continue
            probe = func if ref is not None else getattr(endpoint, name, None)
            if probe is None or not policy.is_allowed(_PolicyView(endpoint, name, probe), name):
                found.pop(name, None)
                continue
            found[name] = probe
    return found


class _PolicyView:
    """Lets a policy look up ``method`` on an actor endpoint through its class."""

    def __init__(self, endpoint: Any, name: str, func: Callable[..., Any]) -> None:
        self._endpoint = endpoint
        setattr(self, name, func)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._endpoint, item)


def endpoint_target(endpoint: Any) -> Target:
    """The ``target`` attribute of an endpoint, or the default (namespace
    None, version 1.0). ``target`` is reserved: anything else there (a method
    named ``target``, a string) is a :class:`TypeError`, as in oslo.messaging."""
    ref = actor_ref_of(endpoint)
    holder = ref.actor_class if ref is not None else endpoint
    target = getattr(holder, "target", None)
    if target is None:
        return Target()
    if not isinstance(target, Target):
        msg = (f"endpoint {type(endpoint).__name__}: its 'target' attribute must be a "
               f"dovecote Target, not {type(target).__name__} (the name is reserved; "
               "rename the method or attribute)")
        raise TypeError(msg)
    return target


def all_refs(endpoints: Iterable[Any]) -> list[pykka.ActorRef[Any]]:
    """The actor refs among ``endpoints``."""
    return [ref for ref in map(actor_ref_of, endpoints) if ref is not None]


class _Invoker:
    """What :func:`install_invoker` puts on an endpoint actor: runs
    ``work(actor)`` in the actor's thread, hands the outcome to ``done``, and
    lets nothing (not even ``SystemExit``) reach pykka, which would stop the
    actor, or every actor. Counts what it ran (in that one thread): ``handled``
    when the work returned, ``failed`` when it raised."""

    __slots__ = ("__weakref__", "actor", "failed", "handled")

    def __init__(self, actor: pykka.Actor) -> None:
        self.actor = actor
        self.handled = self.failed = 0

    def __call__(self, work: Callable[[Any], Any], done: Completion) -> None:
        actor = self.actor
        try:
            outcome: tuple[Any, BaseException | None] = (work(actor), None)
            self.handled += 1
        except BaseException as exc:  # noqa: BLE001 - handed to done as the outcome
            outcome = (None, exc)
            self.failed += 1
        try:
            done(*outcome)
        except BaseException as exc:  # noqa: BLE001 - a bug in dovecote: logged, contained
            with contextlib.suppress(Exception):
                get_logger(__name__).error(
                    "endpoint.completion_failed", actor_urn=actor.actor_urn,
                    error=type(exc).__name__)


#: The invoker of each endpoint actor by URN, while the actor object lives.
_invokers: weakref.WeakValueDictionary[str, _Invoker] = weakref.WeakValueDictionary()


def install_invoker(ref: pykka.ActorRef[Any]) -> None:
    """Give the endpoint actor behind ``ref`` dovecote's invoker (once is enough;
    again keeps the one it has, and its counts). Blocks until the actor has it."""
    # ProxyGetAttr with an empty path answers the actor object itself.
    actor = ref.ask(pykka.messages.ProxyGetAttr(attr_path=()), block=True)
    if isinstance(getattr(actor, _INVOKE_ATTR, None), _Invoker):
        return
    invoker = _invokers[ref.actor_urn] = _Invoker(actor)
    ref.ask(pykka.messages.ProxySetAttr(attr_path=(_INVOKE_ATTR,), value=invoker))


def endpoint_counts(ref: pykka.ActorRef[Any]) -> tuple[int, int]:
    """``(handled, failed)``: how many requests or notifications (a batch counts
    once) the endpoint actor behind ``ref`` ran for dovecote and how many of
    them raised; ``(0, 0)`` before it got any."""
    invoker = _invokers.get(ref.actor_urn)
    return (invoker.handled, invoker.failed) if invoker is not None else (0, 0)


def run_in_actor(
    ref: pykka.ActorRef[Any], work: Callable[[Any], Any], done: Completion
) -> None:
    """Queue ``work(actor)`` in the endpoint actor's mailbox (after
    :func:`install_invoker`); ``done(result, exception)`` runs in the actor's
    thread when it is over. Raises ``pykka.ActorDeadError`` if the actor is gone."""
    ref.tell(pykka.messages.ProxyCall(attr_path=(_INVOKE_ATTR,), args=(work, done), kwargs={}))


#: How often a thread waiting for an endpoint actor checks that it still runs.
_ACTOR_CHECK = 0.5


def actor_method(ref: pykka.ActorRef[Any], name: str) -> Callable[..., Any]:
    """Call ``name`` on an endpoint actor, in its thread, and wait for it; a
    ``BaseException`` there comes back here instead of stopping every actor,
    and an actor that stops before it ran the call is an error, not a hang."""
    func = getattr(ref.actor_class, name)
    install_invoker(ref)

    def call(*args: Any) -> Any:
        finished = threading.Event()
        outcome: list[Any] = [None, None]

        def done(result: Any, exc: BaseException | None) -> None:
            outcome[:] = [result, exc]
            finished.set()

        if _probes.probes:  # the caller's context (a dispatch's span) goes along
            context = contextvars.copy_context()
            run_in_actor(ref, lambda actor: context.run(func, actor, *args), done)
        else:
            run_in_actor(ref, lambda actor: func(actor, *args), done)
        while not finished.wait(_ACTOR_CHECK):
            if ref.actor_stopped.is_set() and not finished.is_set():
                msg = f"endpoint actor {ref} stopped before it handled the notification"
                raise pykka.ActorDeadError(msg)
        if outcome[1] is not None:
            raise outcome[1]
        return outcome[0]

    return call
