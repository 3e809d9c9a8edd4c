"""A message the kombu driver took from a queue, and how it is settled: replies
and republished copies (requeue, dead letters) go out through the broker's
publisher (see :mod:`._broker`); acknowledgements go to the listener's
``settle``, whose thread owns the connection (see :mod:`._listener`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import amqp.serialization

from .._decoding import ERROR_HEADER, REDELIVERIES_HEADER, ROUTING_KEY_HEADER, first_routing_key
from ..base import IncomingMessage

if TYPE_CHECKING:
    from ._broker import KombuBroker

__all__ = ["KombuIncomingMessage", "Settle"]


class Settle(Protocol):
    """How a notification is settled: the listener's
    :meth:`~._listener.KombuListener.settle`, whose thread owns the connection."""

    def __call__(self, raw: Any, generation: int, *, release: bool = False) -> None: ...


#: The headers a copy keeps when the others cannot be written back.
_OWN_HEADERS = (ROUTING_KEY_HEADER, REDELIVERIES_HEADER, ERROR_HEADER)


def _writable(headers: dict[str, Any]) -> bool:
    """Whether py-amqp can encode ``headers`` as a field table."""
    try:
        amqp.serialization.dumps("F", [headers])
    except Exception:  # noqa: BLE001 - whatever a peer sent that py-amqp decoded
        return False
    return True


def _text(value: Any) -> str:
    """``value`` if it is text, else ``""`` (a property a peer set to anything)."""
    return value if isinstance(value, str) else ""


class KombuIncomingMessage(IncomingMessage):
    """A request or notification taken from a RabbitMQ (or other kombu) queue.

    ``settle`` is ``None`` for a request (acknowledged when taken: nothing left
    to settle), else how the listener settles a notification."""

    __slots__ = ("_broker", "_generation", "_queue", "_raw", "_settle", "_settled")

    def __init__(
        self, broker: KombuBroker, settle: Settle | None, queue_name: str, raw: Any,
        generation: int, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._broker = broker
        self._settle = settle
        self._queue = queue_name
        self._raw = raw
        self._generation = generation
        self._settled = False

    def publish_reply(self, reply_q: str, data: str) -> None:
        self._broker.send_reply(reply_q, data, msg_id=self.msg_id)

    def route(self) -> tuple[str, str, str]:
        """As delivered: a requeued copy comes from the default exchange ``""``,
        with its queue's name as routing key."""
        info = self._raw.delivery_info
        info = info if isinstance(info, dict) else {}
        return _text(info.get("exchange")), _text(info.get("routing_key")), self._queue

    def acknowledge(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self._settle is not None:
            self._settle(self._raw, self._generation)

    def _republish(self, queue_name: str, headers: dict[str, Any], **kwargs: Any) -> None:
        """Publish the body again as it came: bytes, so no property a peer set
        (an unknown ``content_encoding``) can make kombu refuse it."""
        raw = self._raw
        # kombu's Redis hands over whatever a peer's JSON envelope held: no body,
        # or properties that are not text.
        body: Any = raw.body if raw.body is not None else b""
        encoding = _text(raw.content_encoding) or "utf-8"
        if isinstance(body, str):  # py-amqp decoded it with the message's own encoding
            try:
                body = body.encode(encoding)
            except (LookupError, UnicodeError):
                body, encoding = body.encode("utf-8", "surrogatepass"), "utf-8"
        broker = self._broker
        broker.publish(
            "", queue_name, bytes(body), headers=headers,
            content_type=_text(raw.content_type) or "application/json",
            content_encoding=encoding, retry=broker.server_retries, **kwargs,
        )

    def _headers(self) -> dict[str, Any]:
        """The headers a requeued or parked copy carries: the ones it came with,
        unless py-amqp cannot write them back (a table nested deeper than the
        recursion limit, say); then only dovecote's own, so a message whose
        headers are hostile can still be parked."""
        raw_headers, info = self._raw.headers, self._raw.delivery_info
        headers = dict(raw_headers) if isinstance(raw_headers, dict) else {}
        if headers and self._broker.is_amqp and not _writable(headers):
            headers = {key: headers[key] for key in _OWN_HEADERS if key in headers}
        headers[ROUTING_KEY_HEADER] = first_routing_key(
            headers, info.get("routing_key") if isinstance(info, dict) else None) or ""
        return headers

    def requeue(self) -> None:
        """Publish the same body again to the same queue with the redelivery count
        raised by one, then acknowledge this copy (so the count survives)."""
        if self._settled:
            return
        headers = self._headers()
        headers[REDELIVERIES_HEADER] = self.redeliveries + 1
        self._republish(self._queue, headers)
        self.acknowledge()

    def dead_letter(self, reason: str) -> str:
        """Publish the body to ``<routing key>.dead`` with ``x-dovecote-error``,
        then acknowledge this copy; return the dead-letter queue's name."""
        headers = self._headers()
        name = f"{headers[ROUTING_KEY_HEADER] or self._queue}.dead"
        headers[ERROR_HEADER] = reason
        if not self._settled:
            entities = self._broker.entities
            self._republish(name, headers, declare=[entities.dead_letter_queue(name)])
            self.acknowledge()
        return name

    def release(self) -> None:
        """Reject this copy with requeue, through the listener's thread like an
        acknowledgement (a request was acknowledged when taken: nothing to do)."""
        if self._settled:
            return
        self._settled = True
        if self._settle is not None:
            self._settle(self._raw, self._generation, release=True)
