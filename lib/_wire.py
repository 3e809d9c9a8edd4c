"""oslo.messaging's wire format: the envelope, request, reply and failure bodies.

Every driver uses these functions, so a message looks the same on every
transport and bad input is judged the same way everywhere.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import re
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import NoSuchMethod, RemoteError, UnsupportedVersion

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_BODY_SIZE",
    "MalformedMessage",
    "decode_body",
    "deserialize_failure",
    "dumps",
    "encode_envelope",
    "loads",
    "new_id",
    "new_uuid",
    "pack_notification",
    "pack_request",
    "serialize_failure",
    "split_context",
    "utc_timestamp",
]

ENVELOPE_VERSION = "2.0"
_VERSION_KEY = "oslo.version"
_MESSAGE_KEY = "oslo.message"
#: What every 2.0 envelope starts with, as ``dumps`` writes it.
_ENVELOPE_PREFIX = f'{{"{_VERSION_KEY}":"{ENVELOPE_VERSION}","{_MESSAGE_KEY}":'
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


#: The largest body a server handles (bytes): a larger one is refused before it
#: is parsed (a call is still answered when its reply address can be found).
MAX_BODY_SIZE = 32 * 1024 * 1024



_UUID4_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
_UUID4_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


class _RandomIds:
    """Hex uuid4s from the operating system's CSPRNG, read 256 at a time: one
    ``getrandom`` call per 256 ids instead of one per id."""

    __slots__ = ("_ids", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []

    def next(self) -> str:
        with self._lock:
            if not self._ids:
                raw = bytearray(os.urandom(16 * 256))
                raw[6::16] = raw[6::16].translate(_UUID4_VERSION)  # version 4
                raw[8::16] = raw[8::16].translate(_UUID4_VARIANT)  # RFC 4122 variant
                text = raw.hex()
                self._ids = [text[i:i + 32] for i in range(0, len(text), 32)]
            return self._ids.pop()


_IDS = _RandomIds()


def new_id() -> str:
    """A fresh hex uuid4, the form every id on the wire takes.

    From the operating system's CSPRNG (``os.urandom``, what ``uuid.uuid4`` and
    :mod:`secrets` use): ids correlate replies and let servers drop repeated
    requests, so they must be unpredictable and must not repeat when an
    application seeds :mod:`random`. Read ahead 256 at a time (about 0.3 µs an
    id instead of 0.8); a forked child starts with none read ahead.
    """
    return _IDS.next()


def new_uuid() -> str:
    """A fresh uuid4 in its dashed form (``str(uuid.uuid4())``, what
    oslo.messaging puts in a notification's ``message_id``), from :func:`new_id`."""
    h = _IDS.next()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reset_ids_after_fork() -> None:
    global _IDS  # noqa: PLW0603 - a child must not reuse its parent's ids
    _IDS = _RandomIds()


os.register_at_fork(after_in_child=_reset_ids_after_fork)


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
#: JSON string quoting, as the encoder does it (``ensure_ascii``).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_DECODER = json.JSONDecoder()
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


#: The C encoder behind ``_ENCODER``, built once: ``JSONEncoder.encode`` builds
#: one per call. Without circular-reference markers, so it is reusable.
_FAST_ENCODER: Callable[[Any, int], Any] | None = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _to_primitive, _quote, None, ":", ",",
        False, False, True)
    if getattr(json.encoder, "c_make_encoder", None) is not None else None)


def dumps(value: Any) -> str:
    """JSON text of ``value`` (dates, sets, UUIDs and bytes are converted)."""
    if _FAST_ENCODER is not None:
        try:
            return "".join(_FAST_ENCODER(value, 0))
        except RecursionError:
            pass  # too deep, or circular: the checking encoder says which
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Parse JSON text (raises ``ValueError``), as ``_DECODER.decode`` does: the
    scanner at once when the text is one JSON value from its first character to
    its last (what peers send), the full decoder (surrounding whitespace, errors
    and their messages) otherwise."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    if end == len(text):
        return value
    return _DECODER.decode(text)


def encode_envelope(message: Mapping[str, Any]) -> str:
    """Wrap ``message`` in the ``oslo.version`` 2.0 envelope, as JSON text (the
    same text ``dumps`` of the envelope gives, without a second pass of the
    encoder over the envelope)."""
    return _ENVELOPE_PREFIX + _quote(dumps(message)) + "}"


def _parse(text: str, what: str) -> Any:
    """Parse JSON text; :class:`MalformedMessage` if it is not JSON or is nested
    deeper than the parser's recursion guard allows (about 900 levels)."""
    try:
        return loads(text)
    except ValueError as exc:
        raise MalformedMessage(f"{what} is not JSON ({exc})") from None
    except RecursionError:
        raise MalformedMessage(f"{what} is nested too deeply to be parsed") from None


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
        body = _parse(body, "body")
    if not isinstance(body, Mapping):
        raise MalformedMessage(f"body is a JSON {type(body).__name__}, not an object")
    if _VERSION_KEY not in body:
        return dict(body)
    inner = body.get(_MESSAGE_KEY)
    if body[_VERSION_KEY] != ENVELOPE_VERSION:
        msg = f"envelope version {body[_VERSION_KEY]!r} is not {ENVELOPE_VERSION!r}"
        try:
            partial = _parse(inner, _MESSAGE_KEY) if isinstance(inner, str) else None
        except MalformedMessage:
            partial = None
        raise MalformedMessage(msg, partial=partial if isinstance(partial, dict) else None)
    if not isinstance(inner, str):
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is missing or not JSON text")
    message = _parse(inner, repr(_MESSAGE_KEY))
    if not isinstance(message, dict):
        kind = type(message).__name__
        raise MalformedMessage(f"{_MESSAGE_KEY!r} is a JSON {kind}, not an object")
    return message


def pack_request(
    ctxt: Mapping[str, Any], message: Mapping[str, Any], *, msg_id: str | None = None,
    reply_q: str | None = None, call_monitor_timeout: float | None = None,
) -> dict[str, Any]:
    """A request as oslo.messaging sends it: context flattened, ids added (a
    ``_unique_id`` the client chose already is kept)."""
    packed = dict(message)
    if "_unique_id" not in packed:
        packed["_unique_id"] = new_id()
    _add_context(packed, ctxt)
    if msg_id is not None:
        packed["_msg_id"] = msg_id
        packed["_reply_q"] = reply_q
        packed["_timeout"] = call_monitor_timeout
    return packed


def pack_notification(ctxt: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    """A notification as oslo.messaging sends it: context flattened, no request id."""
    packed = dict(message)
    _add_context(packed, ctxt)
    return packed


def _add_context(packed: dict[str, Any], ctxt: Mapping[str, Any]) -> None:
    for key, value in ctxt.items():
        packed[_CONTEXT_PREFIX + key] = value


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
    """The failure JSON text for ``exc`` (class, module, message, tb, args, kwargs).
    Never raises: an exception that cannot be described (its ``__str__``
    raises, its arguments are nested too deeply) is sent by class name."""
    try:
        return _serialize_failure(exc, tb_lines)
    except Exception:  # noqa: BLE001 - user exceptions: send what can be sent
        return dumps({"class": type(exc).__name__, "module": type(exc).__module__,
                      "message": f"{type(exc).__name__} (its text could not be read)",
                      "tb": [], "args": [], "kwargs": {}})


def _serialize_failure(exc: BaseException, tb_lines: Iterable[str] | None) -> str:
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
    except (TypeError, ValueError, RecursionError):
        data["args"] = [str(arg)[:2000] for arg in exc.args]
        data["kwargs"] = {}
        return dumps(data)


def deserialize_failure(
    data: str | Mapping[str, Any], allowed_remote_exmods: Iterable[str], *,
    rebuild_dispatch_errors: bool = True,
) -> Exception:
    """Rebuild a remote failure: its own class (as a ``<Name>_Remote`` subclass)
    when its module is builtins or allowed, else :class:`RemoteError`.
    ``NoSuchMethod`` and ``UnsupportedVersion`` are rebuilt whatever their
    module unless ``rebuild_dispatch_errors`` is false (oslo.messaging's rule,
    which the oslo face keeps). Never raises: a failure that cannot be read is
    a ``RemoteError("UnknownFailure")``."""
    try:
        return _deserialize_failure(data, allowed_remote_exmods, rebuild_dispatch_errors)
    except Exception:  # noqa: BLE001 - whatever a peer sent, the caller gets an error
        text = data if isinstance(data, str) else type(data).__name__
        return RemoteError("UnknownFailure", text[:2000], [])


def _deserialize_failure(
    data: str | Mapping[str, Any], allowed_remote_exmods: Iterable[str],
    rebuild_dispatch_errors: bool,  # noqa: FBT001 - private
) -> Exception:
    failure = json.loads(data) if isinstance(data, str) else dict(data)
    if not isinstance(failure, dict):
        raise TypeError("failure is not a JSON object")
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
    allowed = set(allowed_remote_exmods)
    known = _KNOWN_FAILURES.get((module, name))
    if known is not None and not rebuild_dispatch_errors and module not in allowed:
        known = None  # oslo's rule: a dispatch error from a module not allowed is a RemoteError
    if known is None and module != "builtins" and module not in allowed:
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
    return now.replace(tzinfo=None).isoformat(" ", "microseconds")  # strftime's, faster
