"""oslo.messaging's wire format: the envelope, request, reply and failure bodies.

Every driver uses these functions, so a message looks the same on every
transport and bad input is judged the same way everywhere.
"""

from __future__ import annotations

import datetime
import decimal
import json
import random
import re
import sys
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from ._errors import NoSuchMethod, RemoteError, UnsupportedVersion

__all__ = [
    "ENVELOPE_VERSION",
    "MalformedMessage",
    "Unpacked",
    "decode_body",
    "deserialize_failure",
    "dumps",
    "encode_envelope",
    "loads",
    "new_id",
    "pack_request",
    "serialize_failure",
    "split_context",
    "unpack",
    "utc_timestamp",
]

ENVELOPE_VERSION = "2.0"
_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
_CONTEXT_PREFIX = "_context_"
_REMOTE_SUFFIX = "_Remote"
_BUILTIN_MODULES = frozenset({"builtins", "exceptions"})
# Exceptions a dovecote caller always rebuilds as dovecote's own classes, whichever
# library raised them: oslo.messaging names its module, dovecote sends the same name
# so that oslo.messaging callers that allow it rebuild theirs too.
_DISPATCHER_MODULE = "oslo_messaging.rpc.dispatcher"
_KNOWN_FAILURES: dict[tuple[str, str], type[Exception]] = {
    (module, cls.__name__): cls
    for cls in (NoSuchMethod, UnsupportedVersion)
    for module in (_DISPATCHER_MODULE, "dovecote")
}


class MalformedMessage(ValueError):
    """A body that is not a message dovecote or oslo.messaging would send.

    ``partial`` holds what could still be read (the inner message of an
    envelope with the wrong version), so a call can still be answered.
    """

    def __init__(self, reason: str, *, partial: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.partial = partial


class Unpacked(NamedTuple):
    """A received body split for an ``IncomingMessage``."""

    ctxt: dict[str, Any]
    message: dict[str, Any]
    msg_id: str | None
    error: str | None


#: The largest body a server handles (bytes). A larger one is still read, to
#: find where to send the failure reply, but is never dispatched.
MAX_BODY_SIZE = 32 * 1024 * 1024


def unpack(
    body: Any, *, notifications: bool, decode: Callable[[Any], dict[str, Any]] | None = None,
) -> Unpacked:
    """Decode a received body (with ``decode``, default :func:`decode_body`)
    into context, message and reply id; a malformed or oversized one keeps
    what could be read and says what is wrong in ``error``. Notifications have
    no reply id."""
    try:
        raw = (decode or decode_body)(body)
        error = None
    except MalformedMessage as exc:
        raw, error = exc.partial or {}, str(exc)
    size = len(body) if isinstance(body, (str, bytes, bytearray, memoryview)) else 0
    if error is None and size > MAX_BODY_SIZE:
        error = (f"body is {size} bytes, over the {MAX_BODY_SIZE}-byte limit "
                 "(dovecote._wire.MAX_BODY_SIZE)")
    ctxt, message = split_context(raw)
    msg_id = None if notifications else message.get("_msg_id")
    return Unpacked(ctxt, message, msg_id if isinstance(msg_id, str) else None, error)


_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def new_id() -> str:
    """A fresh hex uuid4, the form every id on the wire takes.

    The ids only have to be unique (they correlate replies and spot
    duplicates), not secret, so they come from :mod:`random` (seeded from the
    OS, and re-seeded in a forked child) rather than a system call per id.
    """
    return f"{(random.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def _to_primitive(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return dict(value)
    msg = f"{type(value).__name__} is not JSON serializable; pass a Serializer to convert it"
    raise TypeError(msg)


_ENCODER = json.JSONEncoder(default=_to_primitive, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def dumps(value: Any) -> str:
    """JSON text of ``value`` (dates, sets, UUIDs and bytes are converted)."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Parse JSON text (raises ``ValueError``)."""
    return _DECODER.decode(text)


def encode_envelope(message: Mapping[str, Any]) -> str:
    """Wrap ``message`` in the ``oslo.version`` 2.0 envelope, as JSON text."""
    return dumps({_VERSION_KEY: ENVELOPE_VERSION, _MESSAGE_KEY: dumps(message)})


def decode_body(body: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Undo :func:`encode_envelope`; a body without an envelope is taken bare.

    Raises :class:`MalformedMessage` saying what is wrong.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("body is not UTF-8 text") from None
    if isinstance(body, str):
        try:
            body = _DECODER.decode(body)
        except ValueError as exc:
            raise MalformedMessage(f"body is not JSON ({exc})") from None
    if not isinstance(body, Mapping):
        raise MalformedMessage(f"body is a JSON {type(body).__name__}, not an object")
    if _VERSION_KEY not in body:
        return dict(body)
    inner = body.get(_MESSAGE_KEY)
    if body[_VERSION_KEY] != ENVELOPE_VERSION:
        msg = f"envelope version {body[_VERSION_KEY]!r} is not {ENVELOPE_VERSION!r}"
        try:
            partial = _DECODER.decode(inner) if isinstance(inner, str) else None
        except ValueError:
            partial = None
        raise MalformedMessage(msg, partial=partial if isinstance(partial, dict) else None)
    if not isinstance(inner, str):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is missing or not JSON text")
    try:
        message = _DECODER.decode(inner)
    except ValueError as exc:
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is not JSON ({exc})") from None
    if not isinstance(message, dict):
        kind = type(message).__name__
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is a JSON {kind}, not an object")
    return message


def pack_request(
    ctxt: Mapping[str, Any], message: Mapping[str, Any], *, msg_id: str | None = None,
    reply_q: str | None = None, call_monitor_timeout: float | None = None,
) -> dict[str, Any]:
    """A request as oslo.messaging sends it: context flattened, ids added."""
    packed = dict(message)
    packed["_unique_id"] = new_id()
    for key, value in ctxt.items():
        packed[_CONTEXT_PREFIX + key] = value
    if msg_id is not None:
        packed["_msg_id"] = msg_id
        packed["_reply_q"] = reply_q
        packed["_timeout"] = call_monitor_timeout
    return packed


def split_context(message: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a received message into ``(context, message without context keys)``."""
    ctxt: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in message.items():
        if key.startswith(_CONTEXT_PREFIX):
            ctxt[key[len(_CONTEXT_PREFIX):]] = value
        else:
            rest[key] = value
    return ctxt, rest


def serialize_failure(exc: BaseException, tb_lines: Iterable[str] | None = None) -> str:
    """The failure JSON text for ``exc`` (class, module, message, tb, args, kwargs)."""
    if tb_lines is None:
        tb_lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    cls_name = type(exc).__name__
    module = type(exc).__module__
    if cls_name.endswith(_REMOTE_SUFFIX) and module.endswith(_REMOTE_SUFFIX):
        cls_name = cls_name.removesuffix(_REMOTE_SUFFIX)
        module = module.removesuffix(_REMOTE_SUFFIX)
    if isinstance(exc, (NoSuchMethod, UnsupportedVersion)):
        module = _DISPATCHER_MODULE
    kwargs = getattr(exc, "kwargs", None)
    data = {
        "class": cls_name,
        "module": module,
        "message": str(exc),
        "tb": list(tb_lines),
        "args": list(exc.args),
        "kwargs": kwargs if isinstance(kwargs, dict) else {},
    }
    try:
        return dumps(data)
    except (TypeError, ValueError):
        data["args"] = [str(arg) for arg in exc.args]
        data["kwargs"] = {}
        return dumps(data)


def deserialize_failure(
    data: str | Mapping[str, Any], allowed_remote_exmods: Iterable[str]
) -> Exception:
    """Rebuild a remote failure: its own class (as a ``<Name>_Remote`` subclass)
    when its module is builtins or allowed, else :class:`RemoteError`."""
    try:
        failure = json.loads(data) if isinstance(data, str) else dict(data)
        if not isinstance(failure, dict):
            raise TypeError("failure is not a JSON object")  # noqa: TRY301
    except (TypeError, ValueError):
        return RemoteError("UnknownFailure", str(data), [])
    trace = failure.get("tb") or []
    trace = [str(line) for line in trace] if isinstance(trace, list) else [str(trace)]
    name = str(failure.get("class"))
    module = str(failure.get("module"))
    message = str(failure.get("message", ""))
    args = failure.get("args") or []
    kwargs = failure.get("kwargs") or {}
    text = message + ("\n" + "".join(trace) if trace else "")
    if module in _BUILTIN_MODULES:
        module = "builtins"
    known = _KNOWN_FAILURES.get((module, name))
    if known is None and module != "builtins" and module not in set(allowed_remote_exmods):
        return RemoteError(name, message, trace)
    if known is not None:
        args = _known_failure_args(known, args)

    def _str(_self: object) -> str:
        return text

    try:
        klass: Any = known
        if klass is None:
            __import__(module)
            klass = getattr(sys.modules[module], name)
        if not (isinstance(klass, type) and issubclass(klass, Exception)):
            raise TypeError(f"{module}.{name} is not an Exception class")  # noqa: TRY301
        remote_type = type(name + _REMOTE_SUFFIX, (klass,), {"__str__": _str})
        remote_type.__module__ = module + _REMOTE_SUFFIX
        exc: Exception = remote_type(*args, **kwargs)
    except Exception:  # noqa: BLE001 - anything a foreign constructor raises
        return RemoteError(name, message, trace)
    return exc


_OSLO_SENTENCES = {
    NoSuchMethod: re.compile(r"^Endpoint does not support RPC method (?P<method>.*)$"),
    UnsupportedVersion: re.compile(
        r"^Endpoint does not support RPC version (?P<version>.*?)"
        r"(?:\. Attempted method: (?P<method>.*))?$"),
}


def _known_failure_args(known: type[Exception], args: Any) -> list[Any]:
    """oslo.messaging sends ``NoSuchMethod``/``UnsupportedVersion`` with the whole
    sentence as the only argument; recover the method and version from it."""
    found_args: list[Any] = list(args) if isinstance(args, (list, tuple)) else []
    if len(found_args) == 1 and isinstance(found_args[0], str):
        found = _OSLO_SENTENCES[known].match(found_args[0])
        if found is not None:
            return [value for value in found.groupdict().values() if value is not None]
    return found_args


def utc_timestamp(now: datetime.datetime | None = None) -> str:
    """A notification timestamp: ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S.%f")
