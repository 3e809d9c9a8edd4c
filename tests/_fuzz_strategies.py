"""Hypothesis strategies for what a peer on the bus can send: raw bytes, JSON of
every type in every field of a request or a notification, nesting far deeper
than JSON parsers like, numbers too large to read, AMQP 1.0 values JSON cannot
hold, and headers of the wrong type. Values too deep for ``json.dumps`` travel
as placeholders that :func:`encode` writes out as text."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import strategies as st

#: A field left out of the message.
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()

# Placeholders a field may hold, written as raw JSON text by encode().
_RAW_TEXT = {
    "@@DEEP300@@": "[" * 300 + "]" * 300,     # parses: deep, yet within the parser's guard
    "@@DEEP1500@@": "[" * 1500 + "]" * 1500,  # beyond it
    "@@DEEPOBJ@@": '{"a":' * 1200 + "1" + "}" * 1200,
    "@@HUGEINT@@": "9" * 5000,                # more digits than Python reads from text
    "@@HUGEFLOAT@@": "1e999",                 # infinity
}
SPECIAL = st.sampled_from(sorted(_RAW_TEXT))

_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats() | st.text(max_size=12))
#: Any JSON value (NaN and infinities included: Python's json reads and writes them).
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)
ANY_VALUE = JSON | SPECIAL


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field: left out, a plausible value, any JSON, or a hostile placeholder."""
    return st.one_of(st.just(ABSENT), good, JSON, SPECIAL)


def _dumps(value: Any) -> str:
    value = {k: v for k, v in value.items() if v is not ABSENT} if isinstance(value, dict) else (
        value)
    text = json.dumps(value)
    for placeholder, raw in _RAW_TEXT.items():
        text = text.replace(json.dumps(placeholder), raw)
    return text


def encode(message: dict[str, Any], wrapping: str) -> str:
    """``message`` as a body: in oslo's 2.0 envelope (``v2``), bare (``bare``), in
    an envelope of another version (``v9``), or broken envelopes."""
    message = {key: value for key, value in message.items() if value is not ABSENT}
    inner = _dumps(message)
    if wrapping == "bare":
        return inner
    if wrapping == "inner-not-text":
        return _dumps({"oslo.version": "2.0", "oslo.message": message})
    if wrapping == "inner-not-json":
        return json.dumps({"oslo.version": "2.0", "oslo.message": inner[:-1]})
    version = "2.0" if wrapping == "v2" else "9.9"
    return json.dumps({"oslo.version": version, "oslo.message": inner})


ANSWERABLE_WRAPPINGS = st.sampled_from(["v2", "bare", "v9"])
WRAPPINGS = st.sampled_from(["v2", "bare", "v9", "inner-not-text", "inner-not-json"])
#: Envelopes whose own fields hold any JSON (or are missing).
ODD_ENVELOPES = st.fixed_dictionaries({"oslo.version": field(st.just("2.0")),
                                       "oslo.message": field(st.just("{}"))}).map(_dumps)

#: Bodies that are not messages at all.
RAW_BODIES = st.one_of(
    st.binary(max_size=48),                                   # random bytes
    st.binary(max_size=16).map(lambda b: b"\xff\xfe" + b),    # not UTF-8
    st.just(b""), st.just(""), st.just("null"),
    st.text(max_size=40),                                     # random text
    JSON.map(json.dumps),                                     # JSON of every type
    ODD_ENVELOPES,
    SPECIAL.map(lambda key: _RAW_TEXT[key]),                  # deep nesting, huge numbers
    st.integers(min_value=1, max_value=3).map(lambda n: "[" * (1000 * n)),  # never closed
)


def amqp_values() -> st.SearchStrategy[Any]:
    """AMQP 1.0 bodies that are not JSON text: maps holding described types,
    UUIDs or binary, numbers, arrays, symbols (built lazily: Proton is an
    optional dependency). Not a list: RabbitMQ's AMQP 1.0 plugin drops the
    sender's connection for one, so it never reaches a listener (the decoder
    tests cover lists)."""
    from proton import UNDESCRIBED, Array, Data, Described, symbol, timestamp, ulong

    described = Described(symbol("x-opt:fuzz"), "v")
    return st.sampled_from([
        described,
        {"method": described, "args": {}},
        {"method": "echo", "args": {"value": uuid.UUID(int=7)}},
        {"priority": "INFO", "payload": b"\x00\x01", "message_id": "m"},
        {symbol("priority"): symbol("INFO"), "payload": ulong(3), "message_id": described},
        42,
        None,
        uuid.UUID(int=1),
        Array(UNDESCRIBED, Data.INT, 1, 2, 3),
        timestamp(1_700_000_000_000),
        {1: "integer key"},
    ])


def headers() -> st.SearchStrategy[dict[str, Any]]:
    """dovecote's own headers, with values of any type a broker table can carry."""
    value = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=300))
    return st.dictionaries(
        st.sampled_from(["x-dovecote-redeliveries", "x-dovecote-error", "x-other"]), value,
        max_size=2)


#: ``content_encoding`` values a publisher may name: UTF-8 spelt every way, codecs
#: Python knows (some slow, some binary-to-binary), and names it does not.
CONTENT_ENCODINGS = st.one_of(
    st.none(),
    st.sampled_from(["utf-8", "UTF-8", "utf8", " utf-8 ", "binary", "ascii", "", "punycode",
                     "idna", "utf-16", "utf-32-be", "latin-1", "cp500", "rot13", "base64",
                     "zlib", "bz2", "hex", "uu", "unicode_escape", "mbcs", "nonsense"]),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@st.composite
def _table_entry(draw: st.DrawFn) -> bytes:
    """One AMQP 0-9-1 field-table entry with a value py-amqp may or may not read:
    timestamps over the whole 64 bits, nesting deeper than the recursion limit,
    text that is not UTF-8, every number type RabbitMQ passes on."""
    import struct

    from _hostile_amqp import entry, nested_table, timestamp

    key = draw(st.text(max_size=8) | st.binary(max_size=8))
    kind = draw(st.sampled_from(["T", "F", "S", "l", "I", "d", "t", "x", "V", "D"]))
    if kind == "T":
        return entry(key, b"T", timestamp(draw(st.integers(0, 2**64 - 1))))
    if kind == "F":
        inner = nested_table(draw(st.sampled_from([0, 1, 10, 500, 990, 1100, 5000])))
        return entry(key, b"F", struct.pack(">I", len(inner)) + inner)
    if kind in {"S", "x"}:
        raw = draw(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
        return entry(key, kind.encode(), struct.pack(">I", len(raw)) + raw)
    if kind == "D":
        return entry(key, b"D", struct.pack(">Bi", draw(st.integers(0, 255)),
                                            draw(st.integers(-(2**31), 2**31 - 1))))
    if kind == "V":
        return entry(key, b"V", b"")
    fmt = {"l": ">q", "I": ">i", "d": ">d", "t": ">B"}[kind]
    number = draw({"l": st.integers(-(2**63), 2**63 - 1), "I": st.integers(-(2**31), 2**31 - 1),
                   # RabbitMQ closes the connection of a client that sends NaN or infinity
                   "d": st.floats(allow_nan=False, allow_infinity=False),
                   "t": st.integers(0, 1)}[kind])
    return entry(key, kind.encode(), struct.pack(fmt, number))


@st.composite
def amqp_properties(draw: st.DrawFn) -> bytes:
    """A ``basic`` content header's properties as a hostile AMQP 0-9-1 client
    writes them (see ``_hostile_amqp``): any content type and encoding, a header
    table of any of the entries above, any 64-bit timestamp."""
    from _hostile_amqp import properties

    entries = draw(st.lists(_table_entry(), max_size=3))
    return properties(
        content_type=draw(st.none() | st.just("application/json") | st.text(max_size=16)
                          | st.binary(max_size=16)),
        content_encoding=draw(CONTENT_ENCODINGS),
        headers=b"".join(entries) if entries or draw(st.booleans()) else None,
        timestamp_value=draw(st.none() | st.integers(0, 2**64 - 1)),
    )
