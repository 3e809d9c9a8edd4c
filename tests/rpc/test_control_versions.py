"""The control endpoint never changes what an application endpoint's caller
gets (issue 20, item 9): with ``control=True`` (the default) and with
``control=False``, on every transport, a call the application's endpoints do
not take answers the same exception class with the same text, and that text
says where the method is when it exists in another namespace or version
(nothing private: only what the access policy lets callers call)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _rpc_support import delete_queues, serve

import dovecote
from dovecote import Target
from dovecote.observe._control import CONTROL_NAMESPACE
from dovecote.rpc._dispatcher import RPCDispatcher
from dovecote.testing import call_endpoint

pytestmark = [pytest.mark.timeout(60)]


class Calculator:
    """The application: version 2.0 in the default namespace."""

    target = Target(version="2.0")

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def _secret(self, ctxt: Any) -> str:
        return "private"

    def __private_helper(self) -> None:  # must never be named to callers
        return None


class Bank:
    target = Target(namespace="bank", version="1.2")

    def deposit(self, ctxt: Any, amount: int) -> int:
        return amount


class OldBank:
    target = Target(namespace="bank", version="3.1")

    def deposit(self, ctxt: Any, amount: int) -> int:
        return -amount


#: (namespace, version, method, exception the caller gets, words its text holds,
#: words it must not hold).
CASES: list[tuple[str | None, str | None, str, type[Exception], list[str], list[str]]] = [
    # the control endpoints are version 1.0 of the default namespace (ping) and
    # of dovecote.control: a 1.x call to the application must still say "version"
    (None, "1.0", "add", dovecote.UnsupportedVersion,
     ["version 1.0", "method 'add' exists in the default namespace (version 2.0)"], []),
    (None, "1.3", "nope", dovecote.UnsupportedVersion, ["version 1.3"], ["exists in"]),
    (None, "2.0", "deposit", dovecote.NoSuchMethod,
     ["deposit", "method 'deposit' exists in namespace 'bank' (versions 1.2, 3.1)"], []),
    ("bank", "1.0", "add", dovecote.NoSuchMethod,
     ["add", "exists in the default namespace (version 2.0)"], ["bank'"]),
    ("bank", "2.0", "deposit", dovecote.UnsupportedVersion,
     ["version 2.0", "exists in namespace 'bank' (versions 1.2, 3.1)"], []),
    ("nowhere", "1.0", "add", dovecote.UnsupportedVersion,
     ["version 1.0", "exists in the default namespace (version 2.0)"], []),
    # the control endpoint's own methods, asked of the application's namespace
    (None, "2.0", "ping", dovecote.NoSuchMethod, ["ping"], ["exists in", CONTROL_NAMESPACE]),
    (None, "1.0", "actors", dovecote.UnsupportedVersion, ["actors"],
     ["exists in", CONTROL_NAMESPACE]),
    # private methods are not there, wherever they are asked for
    (None, "2.0", "_secret", dovecote.NoSuchMethod, ["_secret"], ["exists in"]),
    ("bank", "1.2", "_secret", dovecote.NoSuchMethod, ["_secret"], ["exists in", "2.0"]),
    (None, "2.0", "_Calculator__private_helper", dovecote.NoSuchMethod, [], ["exists in"]),
]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0]


@pytest.fixture
def servers(transport: dovecote.Transport, topic: str) -> Iterator[dict[bool, Any]]:
    """Two servers of the same endpoints, control on (``s1``) and off (``s2``)."""
    endpoints = [Calculator(), Bank(), OldBank()]
    try:
        with serve(transport, Target(topic=topic, server="s1"), endpoints), \
                serve(transport, Target(topic=topic, server="s2"), endpoints, control=False):
            yield {True: dovecote.get_rpc_client(transport, Target(topic=topic, server="s1"),
                                                 timeout=10),
                   False: dovecote.get_rpc_client(transport, Target(topic=topic, server="s2"),
                                                  timeout=10)}
    finally:
        delete_queues(transport, topic, f"{topic}.s1", f"{topic}.s2")


def test_the_same_answer_with_and_without_the_control_endpoint(
    servers: dict[bool, Any],
) -> None:
    for namespace, version, method, expected, words, absent in CASES:
        texts = {}
        for control, client in servers.items():
            with pytest.raises(dovecote.MessagingException) as caught:
                client.prepare(namespace=namespace, version=version).call({}, method)
            where = f"{method} (namespace {namespace}, version {version}, control={control})"
            assert isinstance(caught.value, expected), f"{where}: {caught.value!r}"
            texts[control] = _first_line(caught.value)
            for word in words:
                assert word in texts[control], f"{where}: {texts[control]}"
            for word in absent:
                assert word not in texts[control], f"{where}: {texts[control]}"
        assert texts[True] == texts[False]
    # and the calls the endpoints do take still work, the control endpoint too
    assert servers[True].prepare(version="2.0").call({}, "add", a=1, b=2) == 3
    assert servers[False].prepare(namespace="bank", version="3.0").call(
        {}, "deposit", amount=4) == -4
    assert servers[True].prepare(namespace=CONTROL_NAMESPACE).call({}, "ping") == "pong"


def test_the_control_namespace_answers_for_itself(servers: dict[bool, Any]) -> None:
    """A call to the control namespace is not an application call: there the
    control endpoint counts (and with control off the namespace is unknown)."""
    control = servers[True].prepare(namespace=CONTROL_NAMESPACE, version="1.0")
    with pytest.raises(dovecote.NoSuchMethod, match="no_such_probe"):
        control.call({}, "no_such_probe")
    with pytest.raises(dovecote.NoSuchMethod,
                       match=r"exists in the default namespace \(version 2\.0\)"):
        control.call({}, "add", a=1, b=2)
    with pytest.raises(dovecote.UnsupportedVersion, match=r"version 2\.0"):
        servers[True].prepare(namespace=CONTROL_NAMESPACE, version="2.0").call({}, "ping")
    with pytest.raises(dovecote.UnsupportedVersion):
        servers[False].prepare(namespace=CONTROL_NAMESPACE, version="1.0").call({}, "ping")


def test_the_explicit_policy_names_only_exposed_methods() -> None:
    """Under ``ExplicitRPCAccessPolicy`` a method that is not exposed is not
    named in any text, not even as existing elsewhere."""

    class Guarded:
        target = Target(namespace="vault", version="1.0")

        @dovecote.expose
        def open(self, ctxt: Any) -> str:
            return "open"

        def hidden(self, ctxt: Any) -> str:
            return "hidden"

    dispatcher = RPCDispatcher([Guarded()], access_policy=dovecote.ExplicitRPCAccessPolicy())
    with pytest.raises(dovecote.NoSuchMethod) as hidden:
        dispatcher.lookup({"method": "hidden", "namespace": "vault", "version": "1.0"})
    assert "exists" not in str(hidden.value)
    with pytest.raises(dovecote.UnsupportedVersion) as elsewhere:
        dispatcher.lookup({"method": "open", "args": {}})
    assert "method 'open' exists in namespace 'vault' (version 1.0)" in str(elsewhere.value)
    with pytest.raises(dovecote.UnsupportedVersion) as not_named:
        dispatcher.lookup({"method": "hidden", "args": {}})
    assert "exists" not in str(not_named.value)


def test_call_endpoint_answers_the_same() -> None:
    """``dovecote.testing.call_endpoint`` goes through the same dispatcher."""
    with pytest.raises(dovecote.UnsupportedVersion, match="exists in the default namespace"):
        call_endpoint(Calculator(), "add", version="1.0", a=1, b=2)
