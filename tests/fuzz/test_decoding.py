"""The shared decoding boundary, alone: whatever value a driver hands it (text,
bytes, an AMQP 1.0 value, headers of any type), ``unpack`` and ``decode_reply``
return and never raise; the failure helpers never raise either."""

from __future__ import annotations

import json
import uuid
from typing import Any

from _fuzz_strategies import JSON, RAW_BODIES, amqp_values, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote import _wire
from dovecote.drivers._decoding import (
    ERROR_HEADER,
    REDELIVERIES_HEADER,
    decode_reply,
    first_routing_key,
    unpack,
)

HASHABLE = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8)
ANYTHING = st.recursive(
    HASHABLE | st.floats() | st.uuids() | st.builds(object) | st.just(uuid.UUID(int=3)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HASHABLE, inner, max_size=3)
    | st.tuples(inner, inner),
    max_leaves=8,
)
BODIES = RAW_BODIES | ANYTHING | amqp_values() | st.builds(bytearray, st.binary(max_size=16))
HEADERS = st.none() | st.dictionaries(
    st.sampled_from([REDELIVERIES_HEADER, ERROR_HEADER, "x-dovecote-routing-key", "other"]),
    ANYTHING, max_size=3)


@settings(max_examples=500, deadline=None)
@given(body=BODIES, headers=HEADERS, notifications=st.booleans())
def test_unpack_never_raises(body: Any, headers: Any, notifications: bool) -> None:
    decoded = unpack(body, notifications=notifications, headers=headers)
    assert isinstance(decoded.message, dict)
    assert isinstance(decoded.ctxt, dict)
    assert decoded.error is None or isinstance(decoded.error, str)
    assert isinstance(decoded.redeliveries, int)
    assert decoded.redeliveries >= 0
    assert decoded.msg_id is None or (isinstance(decoded.msg_id, str) and decoded.msg_id)
    assert decode_reply(body) is None or isinstance(decode_reply(body), dict)
    first_routing_key(headers, body)


@settings(max_examples=300, deadline=None)
@given(message=st.dictionaries(st.text(max_size=10), JSON, max_size=5),
       wrapping=st.sampled_from(["v2", "bare"]))
def test_a_readable_message_comes_back_whole(message: dict[str, Any], wrapping: str) -> None:
    body = encode({"method": "m", **message}, wrapping)
    decoded = unpack(body, notifications=False)
    assert decoded.error is None
    expected = json.loads(encode({"method": "m", **message}, "bare"))
    got = {**decoded.message, **{f"_context_{k}": v for k, v in decoded.ctxt.items()}}
    # compared as JSON text: NaN is not equal to itself, but its text is
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(data=st.text(max_size=60) | JSON.map(json.dumps) | st.dictionaries(
    st.sampled_from(["class", "module", "message", "tb", "args", "kwargs"]), JSON))
def test_deserialize_failure_always_gives_an_exception(data: Any) -> None:
    assert isinstance(_wire.deserialize_failure(data, ["builtins", "json"]), Exception)


@settings(max_examples=200, deadline=None)
@given(args=st.lists(ANYTHING, max_size=3))
def test_serialize_failure_always_gives_failure_json(args: list[Any]) -> None:
    failure = json.loads(_wire.serialize_failure(ValueError(*args)))
    assert failure["class"] == "ValueError"


def test_deep_and_huge_bodies_are_refused_with_a_reason() -> None:
    deep = unpack("[" * 100_000, notifications=True)
    assert deep.error is not None
    assert "nested too deeply" in deep.error
    huge = unpack('{"n": ' + "9" * 5000 + "}", notifications=True)
    assert huge.error is not None
    assert "not JSON" in huge.error
    call = unpack('{"_msg_id": "abc", "_reply_q": "reply_x", "a": ' + "[" * 3000 + "}",
                  notifications=False)
    assert call.error is not None
    assert (call.msg_id, call.message["_reply_q"]) == ("abc", "reply_x")


def test_counts_and_keys_from_headers_are_sanitised() -> None:
    assert unpack("{}", notifications=True,
                  headers={REDELIVERIES_HEADER: -5}).redeliveries == 0
    assert unpack("{}", notifications=True,
                  headers={REDELIVERIES_HEADER: float("inf")}).redeliveries == 0
    assert unpack("{}", notifications=True,
                  headers={REDELIVERIES_HEADER: "3"}).redeliveries == 3
    assert first_routing_key({"x-dovecote-routing-key": "x" * 300}, "t.info") == "t.info"
    assert first_routing_key({"x-dovecote-routing-key": ["t"]}, None) is None
