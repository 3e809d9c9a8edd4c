"""``oslo_messaging.serializer``: dovecote's serializers (same methods)."""

from .._serializer import JsonPayloadSerializer, NoOpSerializer, Serializer

__all__ = ["JsonPayloadSerializer", "NoOpSerializer", "Serializer"]
