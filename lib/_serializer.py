"""Serializers turn entities and contexts into JSON-friendly values and back."""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any

from . import _wire

__all__ = ["JsonPayloadSerializer", "NoOpSerializer", "Serializer"]


class Serializer(abc.ABC):
    """Converts what the application passes into what travels, and back."""

    @abc.abstractmethod
    def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        """Turn an argument or result into a JSON-friendly value."""

    @abc.abstractmethod
    def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        """Rebuild an argument or result from what arrived."""

    @abc.abstractmethod
    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        """Turn the request context into a dict."""

    @abc.abstractmethod
    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        """Rebuild the request context from a dict."""


class NoOpSerializer(Serializer):
    """Passes everything through unchanged (the default)."""

    def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        # A request context object (oslo.context's RequestContext and the like)
        # travels as its to_dict(), as oslo.messaging sends it.
        if not isinstance(ctxt, Mapping) and callable(getattr(ctxt, "to_dict", None)):
            return dict(ctxt.to_dict())
        return dict(ctxt or {})

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return ctxt


class JsonPayloadSerializer(NoOpSerializer):
    """Converts entities to JSON primitives (dates, sets, UUIDs ...) on send."""

    def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        return json.loads(_wire.dumps(entity))
