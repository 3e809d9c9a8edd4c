"""Option values as every driver reads them: from a URL query (text) or a
``get_transport`` keyword argument (a Python value), with errors that name the
option and never show the URL's password."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import InvalidTransportURL

if TYPE_CHECKING:
    from .._url import TransportURL

__all__ = ["as_bool", "as_number"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def as_bool(url: TransportURL, name: str, value: Any) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidTransportURL(
        str(url), f"option {name}={value!r} is not a boolean: use true or false"
    )


def as_number(url: TransportURL, name: str, value: Any, kind: type[float] | type[int]) -> Any:
    """A non-negative number of ``kind``."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise InvalidTransportURL(str(url), f"option {name}={value!r} is not {what}") from None
    if number < 0:
        raise InvalidTransportURL(str(url), f"option {name}={value!r} must not be negative")
    return number
