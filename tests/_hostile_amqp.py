"""A hostile AMQP 0-9-1 publisher: plain py-amqp writing exactly the content
header bytes a test hands it (properties and header tables py-amqp itself would
never write, such as a ``T`` timestamp past year 9999), as an attacker's client
would. Nothing here is mocked: the bytes go through the real broker."""

from __future__ import annotations

import struct
from typing import Any

import amqp

__all__ = [
    "HostilePublisher", "entry", "nested_table", "properties", "shortstr", "timestamp",
]

BROKER = "127.0.0.1:5672"


def shortstr(value: str | bytes) -> bytes:
    """An AMQP short string (at most 255 bytes)."""
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("B", len(raw)) + raw[:255]


def entry(key: str | bytes, kind: bytes, value: bytes) -> bytes:
    """One field-table entry: key, type letter, encoded value."""
    return shortstr(key) + kind + value


def timestamp(seconds: int) -> bytes:
    """A ``T`` field value: 64 unsigned bits, whatever they say."""
    return struct.pack(">Q", seconds % 2**64)


def nested_table(depth: int) -> bytes:
    """A field table nested ``depth`` tables deep (built without recursion)."""
    inner = entry("k", b"V", b"")
    for _ in range(depth):
        inner = entry("k", b"F", struct.pack(">I", len(inner)) + inner)
    return inner


def properties(
    *, content_type: str | bytes | None = "application/json",
    content_encoding: str | bytes | None = "utf-8", headers: bytes | None = None,
    timestamp_value: int | None = None,
) -> bytes:
    """A ``basic`` content header's property flags and list: persistent, with
    the given content type and encoding (``None``: absent), raw header table
    bytes, and a raw timestamp."""
    flags, out = 0x1000, b""
    if content_type is not None:
        flags |= 0x8000
        out += shortstr(content_type)
    if content_encoding is not None:
        flags |= 0x4000
        out += shortstr(content_encoding)
    if headers is not None:
        flags |= 0x2000
        out += struct.pack(">I", len(headers)) + headers
    out += b"\x02"  # delivery mode: persistent
    if timestamp_value is not None:
        flags |= 0x0040
        out += struct.pack(">Q", timestamp_value % 2**64)
    return struct.pack(">H", flags) + out


class _Crafted(amqp.Message):  # type: ignore[misc]
    """A message whose content header carries exactly ``raw_properties``."""

    def __init__(self, body: bytes, raw_properties: bytes) -> None:
        super().__init__(body)
        self._raw_properties = raw_properties

    def _serialize_properties(self) -> bytes:
        return self._raw_properties


class HostilePublisher:
    """One plain py-amqp connection to the test broker, publishing crafted
    messages to a queue (default exchange) or an exchange."""

    def __init__(self, *, host: str = BROKER, vhost: str = "/") -> None:
        self._conn = amqp.Connection(host, userid="guest", password="guest",
                                     virtual_host=vhost, confirm_publish=True)
        self._conn.connect()
        self._channel: Any = self._conn.channel()

    def publish(self, routing_key: str, body: bytes, raw_properties: bytes, *,
                exchange: str = "") -> None:
        """Publish and wait for the broker's confirm."""
        self._channel.basic_publish(_Crafted(body, raw_properties), exchange=exchange,
                                    routing_key=routing_key)

    def close(self) -> None:
        self._conn.collect()

    def __enter__(self) -> HostilePublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
