"""NotificationFilter: which notifications an endpoint wants, by regular expression."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NotificationFilter"]

Pattern = Any  # a compiled regular expression, or a dict of them (nested)


def _compile(spec: Any) -> Pattern:
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return {key: _compile(value) for key, value in spec.items()}
    return re.compile(spec)


def _mismatch(data: Any, pattern: Pattern) -> bool:
    if pattern is None:
        return False
    if isinstance(pattern, dict):
        if not isinstance(data, Mapping):
            return True
        return any(key not in data or _mismatch(data[key], sub) for key, sub in pattern.items())
    return not isinstance(data, str) or pattern.match(data) is None


class NotificationFilter:
    """Set as an endpoint's ``filter_rule``: the endpoint sees a notification
    only when every given expression matches (``re.match``, anchored at the
    start). ``context``, ``metadata`` and ``payload`` take dicts of key to
    expression, nested as deep as the data."""

    def __init__(
        self, context: Mapping[str, Any] | None = None, publisher_id: str | None = None,
        event_type: str | None = None, metadata: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self._context = _compile(context)
        self._publisher_id = _compile(publisher_id)
        self._event_type = _compile(event_type)
        self._metadata = _compile(metadata)
        self._payload = _compile(payload)

    def match(
        self, context: Any, publisher_id: Any, event_type: Any, metadata: Any, payload: Any,
    ) -> bool:
        """Whether the notification passes the filter."""
        return not (
            _mismatch(context, self._context)
            or _mismatch(publisher_id, self._publisher_id)
            or _mismatch(event_type, self._event_type)
            or _mismatch(metadata, self._metadata)
            or _mismatch(payload, self._payload)
        )
