"""``get_rpc_client`` spells out its options (an editor completes them, a type
checker checks them): the same names, types and defaults as ``RPCClient``'s
constructor, keyword-only after ``transport`` and ``target``, and each one
reaches the client."""

from __future__ import annotations

import inspect

import pytest

import dovecote
from dovecote import RPCClient, get_rpc_client


def test_the_options_are_the_constructors_keyword_only() -> None:
    ours = inspect.signature(get_rpc_client).parameters
    theirs = inspect.signature(RPCClient.__init__).parameters
    assert list(ours) == [name for name in theirs if name != "self"]
    assert [p.kind for p in ours.values()][:2] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2
    for name in list(ours)[2:]:
        assert ours[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert ours[name].default == theirs[name].default, name
        assert ours[name].annotation == theirs[name].annotation, name
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in ours.values())
    assert all(p.annotation is not p.empty for p in ours.values())
    assert inspect.signature(get_rpc_client).return_annotation == "RPCClient"


def test_each_option_reaches_the_client() -> None:
    transport = dovecote.get_transport("memory://client-factory-signature")
    try:
        serializer = dovecote.JsonPayloadSerializer()
        client = get_rpc_client(
            transport, dovecote.Target(topic="t"), timeout=3.5, version_cap="1.4",
            serializer=serializer, retry=2, call_monitor_timeout=10,
            transport_options={"at_least_once": True})
        options = client._options
        assert (options.timeout, options.version_cap, options.retry) == (3.5, "1.4", 2)
        assert options.call_monitor_timeout == 10.0
        assert dict(options.transport_options) == {"at_least_once": True}
        assert client.serializer is serializer
        with pytest.raises(TypeError):
            get_rpc_client(transport, dovecote.Target(topic="t"), 3.5)  # type: ignore[misc]
        with pytest.raises(TypeError):
            get_rpc_client(transport, dovecote.Target(topic="t"), timout=3)  # type: ignore[call-arg]
    finally:
        transport.cleanup()
