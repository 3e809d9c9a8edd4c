"""py-amqp's frame reading and message classes, made safe for what a peer can
put in a message.

py-amqp decodes a message's properties while it reads the content header frame.
A value it cannot decode (a ``T`` timestamp header past year 9999, a table nested
deeper than Python's recursion limit, a type letter it does not know, a content
type that is not UTF-8) raises out of the read and leaves the connection's framing
half-way: the listener loses its connection, the broker redelivers the same
message, and the loop never ends. Here every connection reads frames with
:func:`frame_handler`, whose messages fall back to a lenient reading of such a
header (the application headers dropped, the reason kept in
:attr:`SafeContent.unreadable`), so the delivery reaches the listener like any
other and is refused there: parked, answered or dropped, never looped on.

Bodies are handed over as the bytes that came: py-amqp would decode them with
whatever ``content_encoding`` the publisher named (``punycode`` takes time
quadratic in the size) and kombu would inflate them by their ``compression``
header before anything could check their size. :mod:`.._decoding` sizes them
first and decodes only UTF-8.
"""

from __future__ import annotations

from collections import defaultdict
from struct import unpack_from
from typing import Any

import amqp.basic_message
import amqp.serialization
from amqp import spec
from amqp.exceptions import UnexpectedFrame
from kombu.transport import pyamqp as _pyamqp

__all__ = ["Channel", "SafeContent", "frame_handler", "lenient_properties"]

#: The longest reason kept for a header that could not be decoded.
_MAX_REASON = 200
#: Methods followed by a content header and body frames.
_CONTENT_METHODS = frozenset({spec.Basic.Return, spec.Basic.Deliver, spec.Basic.GetOk})
#: ``basic`` properties after ``application_headers``, in wire order: flag, name, kind.
_AFTER_HEADERS = (
    (0x1000, "delivery_mode", "o"), (0x0800, "priority", "o"),
    (0x0400, "correlation_id", "s"), (0x0200, "reply_to", "s"),
    (0x0100, "expiration", "s"), (0x0080, "message_id", "s"),
    (0x0040, "timestamp", "Q"), (0x0020, "type", "s"), (0x0010, "user_id", "s"),
    (0x0008, "app_id", "s"), (0x0004, "cluster_id", "s"),
)


def _shortstr(buf: Any, offset: int) -> tuple[str, int]:
    size = buf[offset]
    return bytes(buf[offset + 1:offset + 1 + size]).decode("utf-8", "replace"), offset + 1 + size


def lenient_properties(buf: Any, offset: int) -> tuple[dict[str, Any], str | None]:
    """``basic`` properties from a content header py-amqp could not decode: every
    simple property as far as the buffer holds it (text with undecodable bytes
    replaced, the timestamp as the number it is), the application headers
    dropped when they cannot be read. Returns them and why the headers were
    dropped (``None`` if they were read). Never raises."""
    properties: dict[str, Any] = {}
    dropped = None
    try:
        flags = unpack_from(">H", buf, offset)[0]
        offset += 2
        for flag, name in ((0x8000, "content_type"), (0x4000, "content_encoding")):
            if flags & flag:
                properties[name], offset = _shortstr(buf, offset)
        if flags & 0x2000:
            size = unpack_from(">I", buf, offset)[0]
            try:
                table, _ = amqp.serialization.loads("F", buf, offset)
                properties["application_headers"] = table[0]
            except Exception as exc:  # noqa: BLE001 - any value py-amqp cannot read
                dropped = describe(exc)
            offset += 4 + size
        for flag, name, kind in _AFTER_HEADERS:
            if flags & flag:
                if kind == "s":
                    properties[name], offset = _shortstr(buf, offset)
                else:
                    fmt, size = (">B", 1) if kind == "o" else (">Q", 8)
                    properties[name] = unpack_from(fmt, buf, offset)[0]
                    offset += size
    except Exception as exc:  # noqa: BLE001 - a truncated header: keep what was read
        dropped = dropped or describe(exc)
    return properties, dropped


def describe(exc: BaseException) -> str:
    """``exc`` as a short line for a log or a dead letter's reason."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_REASON]


class SafeContent(amqp.basic_message.Message):  # type: ignore[misc]
    """py-amqp's message, whose properties never fail to load: when py-amqp's
    decoder raises, :func:`lenient_properties` reads what it can and
    :attr:`unreadable` says why the message cannot be trusted."""

    #: Why the properties could not be decoded (``None``: they were).
    unreadable: str | None = None

    def _load_properties(self, class_id: int, buf: Any, offset: int) -> int:
        try:
            return int(super()._load_properties(class_id, buf, offset))
        except Exception as exc:  # noqa: BLE001 - whatever a peer put in the header
            self.properties, dropped = lenient_properties(buf, offset)
            self.unreadable = f"its AMQP properties could not be decoded ({describe(exc)})"
            if dropped is not None:
                self.unreadable += "; its application headers were dropped"
            return offset


def frame_handler(connection: Any, callback: Any) -> Any:
    """py-amqp's frame reader (``amqp.method_framing.frame_handler``), building
    :class:`SafeContent` messages. The framing rules are py-amqp's: a content
    method, then its header, then body frames until the size is reached."""
    expected_types: defaultdict[int, int] = defaultdict(lambda: 1)
    partial: dict[int, SafeContent] = {}

    def on_frame(frame: tuple[int, int, Any]) -> bool:
        frame_type, channel, buf = frame
        connection.bytes_recv += 1
        if frame_type not in (expected_types[channel], 8):
            msg = f"Received frame {frame_type} while expecting type: {expected_types[channel]}"
            raise UnexpectedFrame(msg)
        if frame_type == 1:
            method_sig = unpack_from(">HH", buf, 0)
            if method_sig in _CONTENT_METHODS:
                partial[channel] = SafeContent(frame_method=method_sig, frame_args=buf)
                expected_types[channel] = 2
                return False
            callback(channel, method_sig, buf, None)
            return True
        if frame_type == 2:
            message = partial[channel]
            message.inbound_header(buf)
        elif frame_type == 3:
            message = partial[channel]
            message.inbound_body(buf)
        else:
            return False  # a heartbeat: bytes_recv already counted it
        if not message.ready:
            expected_types[channel] = 3
            return False
        expected_types[channel] = 1
        del partial[channel]
        callback(channel, message.frame_method, message.frame_args, message)
        return True

    return on_frame


class _Undecompressed(_pyamqp.Message):
    """kombu's AMQP message without kombu's decompression: kombu inflates a body
    whose ``compression`` header names a codec before anything can check its
    size, so a small body could inflate to gigabytes. Neither dovecote nor
    oslo.messaging compresses: such a body is taken as it came (and, being no
    JSON, parked or refused), its headers intact. ``unreadable`` comes from
    :class:`SafeContent`."""

    def __init__(self, msg: Any, channel: Any = None, **kwargs: Any) -> None:
        headers = msg.properties.get("application_headers")
        compression = headers.pop("compression", None) if isinstance(headers, dict) else None
        super().__init__(msg, channel=channel, **kwargs)  # type: ignore[no-untyped-call]
        if compression is not None:
            self.headers["compression"] = compression
        self.unreadable: str | None = getattr(msg, "unreadable", None)


class Channel(_pyamqp.Channel):
    """kombu's py-amqp channel, handing bodies over as bytes (no decoding by the
    publisher's ``content_encoding``) in :class:`_Undecompressed` messages."""

    Message = _Undecompressed

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.auto_decode = False
