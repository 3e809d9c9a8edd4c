"""What a driver received, turned into a message: the one decoding boundary
every driver shares.

Anyone who can publish to the broker can put any bytes, headers or AMQP value
on a queue. :func:`unpack` turns whatever arrived into the fields of an
:class:`~dovecote.drivers.base.IncomingMessage` and never raises: a body that
is not a message comes back with ``error`` saying why (and, for a call, the
reply address if it could be read), so the server can answer it, park it or
log it, and go on with the next one. :func:`decode_reply` does the same for
replies. Bounds are checked before work: the size before parsing, the nesting
depth while parsing (the JSON parser's own recursion guard, caught per body).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .. import _wire

__all__ = [
    "ERROR_HEADER",
    "MAX_ID_LENGTH",
    "READABLE_ENCODINGS",
    "REDELIVERIES_HEADER",
    "ROUTING_KEY_HEADER",
    "Unpacked",
    "body_size",
    "decode_reply",
    "encoding_problem",
    "first_routing_key",
    "unpack",
]

#: How many times a notification was requeued (a header on RabbitMQ, an
#: application property on AMQP 1.0, a header in the memory broker).
REDELIVERIES_HEADER = "x-dovecote-redeliveries"
#: Why a dead letter was parked.
ERROR_HEADER = "x-dovecote-error"
#: The routing key a notification first arrived with, kept across requeues so its
#: dead-letter queue is still ``<topic>.<priority>.dead`` when it came from a pool.
ROUTING_KEY_HEADER = "x-dovecote-routing-key"
#: The longest ``_msg_id``, ``_reply_q`` or ``_unique_id`` taken as one: ids on
#: the wire are 32 hex digits, queue names at most 255 bytes.
MAX_ID_LENGTH = 255
#: The longest routing key kept for a dead letter (``<key>.dead`` must stay a
#: valid queue name, at most 255 bytes).
_MAX_ROUTING_KEY = 250
#: The longest dead-letter reason read back from a header.
_MAX_REASON = 2000
#: The ``content_encoding`` values whose bodies are read (see :func:`encoding_problem`).
READABLE_ENCODINGS = frozenset({"", "utf-8", "utf8", "ascii", "us-ascii", "binary"})

# For a body over the size limit: the reply address of a call, found without
# parsing it (inside an envelope the inner JSON is escaped, hence the optional \).
_ID = r'\\?"\s*:\s*\\?"([0-9A-Za-z_.:-]{1,255})\\?"'
_MSG_ID = re.compile('\\\\?"_msg_id' + _ID)
_REPLY_Q = re.compile('\\\\?"_reply_q' + _ID)
_MSG_ID_B = re.compile(_MSG_ID.pattern.encode())
_REPLY_Q_B = re.compile(_REPLY_Q.pattern.encode())


class Unpacked(NamedTuple):
    """A received body split for an ``IncomingMessage``."""

    ctxt: dict[str, Any]
    message: dict[str, Any]
    msg_id: str | None
    error: str | None
    redeliveries: int = 0
    dead_letter_reason: str | None = None


def body_size(body: object) -> int | None:
    """The size of ``body`` in bytes (``None`` for an AMQP value other than text)."""
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    if isinstance(body, memoryview):
        return body.nbytes
    if isinstance(body, str):
        chars = len(body)
        if chars > _wire.MAX_BODY_SIZE or 4 * chars <= _wire.MAX_BODY_SIZE or body.isascii():
            return chars  # exact for ASCII, and decides the limit either way otherwise
        return len(body.encode("utf-8", "surrogatepass"))
    return None


def _as_text_or_map(body: object) -> str | bytes | dict[str, Any]:
    """The body as JSON text, or a map of JSON values; :class:`_wire.MalformedMessage`
    for an AMQP value that is neither (a list, a number, a described type ...)."""
    if isinstance(body, (str, bytes)):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, Mapping):
        # An AMQP 1.0 map: accepted when it holds only what JSON can (checked
        # by encoding it, which also turns AMQP symbols and the like into str).
        try:
            return dict(_wire.loads(json.dumps(body)))
        except (TypeError, ValueError, RecursionError):
            raise _wire.MalformedMessage(
                "body is an AMQP map holding values JSON cannot represent") from None
    raise _wire.MalformedMessage(f"body is an AMQP {type(body).__name__}, not JSON text")


def encoding_problem(content_encoding: object) -> str | None:
    """Why a body with this ``content_encoding`` is not read, or ``None``.

    Bodies are JSON, which travels as UTF-8 (what oslo.messaging sends, through
    kombu's JSON serializer). A publisher could name any codec Python knows, some
    of them slow beyond reason (``punycode`` is quadratic in the size): only
    UTF-8 and its ASCII subset are read, and ``binary`` (kombu's label for bytes
    sent as they are) or no encoding at all, which leave the bytes to JSON's own
    rules."""
    if content_encoding is None:
        return None
    if isinstance(content_encoding, str) and content_encoding.strip().lower() in READABLE_ENCODINGS:
        return None
    return (f"content_encoding {_clip(content_encoding)} is not supported: dovecote reads "
            "UTF-8 JSON bodies (as oslo.messaging sends them)")


def _clip(value: object, limit: int = 40) -> str:
    """How a property a peer set is quoted in an error: cut, never whole."""
    text = repr(value[: limit + 1]) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _decode(body: object, content_encoding: object = None,
            unreadable: str | None = None) -> dict[str, Any]:
    if unreadable is not None:
        raise _wire.MalformedMessage(unreadable)
    size = body_size(body)
    if size is not None and size > _wire.MAX_BODY_SIZE:
        raise _wire.MalformedMessage(
            f"body is {size} bytes, over the {_wire.MAX_BODY_SIZE}-byte limit "
            "(dovecote._wire.MAX_BODY_SIZE)")
    problem = encoding_problem(content_encoding)
    if problem is not None:
        raise _wire.MalformedMessage(problem)
    return _wire.decode_body(_as_text_or_map(body))


def _reply_address(body: object) -> dict[str, Any] | None:
    """``_msg_id`` and ``_reply_q`` of a call that could not be parsed (or was too
    large to be), found by a linear scan of its text."""
    if isinstance(body, str):
        found = _MSG_ID.search(body), _REPLY_Q.search(body)
        if found[0] and found[1]:
            return {"_msg_id": found[0].group(1), "_reply_q": found[1].group(1)}
    elif isinstance(body, (bytes, bytearray, memoryview)):
        found_b = _MSG_ID_B.search(body), _REPLY_Q_B.search(body)
        if found_b[0] and found_b[1]:
            return {"_msg_id": found_b[0].group(1).decode(),
                    "_reply_q": found_b[1].group(1).decode()}
    return None


def _count(value: object) -> int:
    """A redelivery count from a header: a non-negative int, else 0 (a negative
    count would let a message loop forever)."""
    if not isinstance(value, (int, float, str, bytes)) or isinstance(value, bool):
        return 0
    try:
        return max(0, int(value))
    except (ValueError, OverflowError):  # "x", inf, nan, an int of 5,000 digits
        return 0


def _short_id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


def unpack(
    body: object, *, notifications: bool, headers: Mapping[str, Any] | None = None,
    content_encoding: object = None, unreadable: str | None = None,
) -> Unpacked:
    """Decode a received body (text, bytes, or an AMQP value) and its headers.

    Never raises: a body that is not a message keeps what could be read and
    says what is wrong in ``error``. Notifications have no reply id; a call's
    ``_msg_id`` counts only if it is a short string. ``content_encoding`` is the
    one the publisher named (see :func:`encoding_problem`); ``unreadable`` says
    why the driver could not decode the message's properties (the message is
    then refused too, and a call still answered when its body names a reply
    address).
    """
    try:
        try:
            raw = _decode(body, content_encoding, unreadable)
            error = None
        except _wire.MalformedMessage as exc:
            # A call that cannot be read can often still be answered: its reply
            # address is found by a plain scan of the text.
            partial = exc.partial or (None if notifications else _reply_address(body))
            raw, error = partial or {}, str(exc)
        ctxt, message = _wire.split_context(raw)
        msg_id = None if notifications else _short_id(message.get("_msg_id"))
        redeliveries = 0
        reason = None
        if headers:
            redeliveries = _count(headers.get(REDELIVERIES_HEADER))
            found = headers.get(ERROR_HEADER)
            reason = None if found is None else str(found)[:_MAX_REASON]
        return Unpacked(ctxt, message, msg_id, error, redeliveries, reason)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing a peer sends escapes
        return Unpacked({}, {}, None, f"body could not be decoded ({type(exc).__name__})")


def first_routing_key(headers: Mapping[str, Any] | None, delivered: object) -> str | None:
    """The routing key a notification first arrived with: the one a requeue
    kept in ``x-dovecote-routing-key``, else the one it was delivered with.
    Only a plausible queue name counts (the header travels with the message,
    so a peer may have set it to anything)."""
    kept = headers.get(ROUTING_KEY_HEADER) if headers else None
    for key in (kept, delivered):
        if isinstance(key, str) and 0 < len(key) <= _MAX_ROUTING_KEY:
            return key
    return None


def decode_reply(body: object, *, content_encoding: object = None,
                 unreadable: str | None = None) -> dict[str, Any] | None:
    """A reply body as a dict, or ``None`` when it is not one or cannot be read
    (see :func:`unpack` for the arguments). Never raises."""
    try:
        return _decode(body, content_encoding, unreadable)
    except Exception:  # noqa: BLE001 - a bad reply is dropped, the receiver goes on
        return None
