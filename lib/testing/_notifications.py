"""What the ``test`` notifier driver kept, with helpers to assert on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from ..notify._notifier import get_test_notifications, reset_test_notifications

__all__ = ["SentNotification", "SentNotifications"]

_ANY: Any = object()
#: How much of a payload a failure message quotes.
_QUOTE = 200


def _priority(name: str) -> str:
    upper = name.upper()
    return "WARN" if upper == "WARNING" else upper


@dataclasses.dataclass(frozen=True, slots=True)
class SentNotification:
    """One notification a notifier with the ``test`` driver sent: ``priority``
    in upper case (``"INFO"``), ``ctxt`` as the serializer made it, ``topics``
    it would have gone to, and ``message`` the whole body (``message_id``,
    ``timestamp`` ...)."""

    event_type: str
    payload: Any
    priority: str
    publisher_id: str | None
    ctxt: Any
    topics: list[str]
    message: dict[str, Any]

    def __str__(self) -> str:
        payload = repr(self.payload)
        if len(payload) > _QUOTE:
            payload = payload[: _QUOTE - 3] + "..."
        return f"{self.priority} {self.event_type!r} from {self.publisher_id!r}: {payload}"


class SentNotifications:
    """The notifications sent through the ``test`` driver (``Notifier(...,
    driver="test")``, alone or beside others) since the last :meth:`clear`.
    The store is the process's: notifications sent from any thread count."""

    def all(self) -> list[SentNotification]:
        """Every one, oldest first."""
        found = []
        for sent in get_test_notifications():
            message = sent["message"]
            found.append(SentNotification(
                event_type=message.get("event_type"), payload=message.get("payload"),
                priority=str(sent["priority"]), publisher_id=message.get("publisher_id"),
                ctxt=sent["ctxt"], topics=list(sent["topics"]), message=message))
        return found

    def __iter__(self) -> Iterator[SentNotification]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(get_test_notifications())

    def __getitem__(self, index: int) -> SentNotification:
        """The ``index``-th one sent (``-1``: the last)."""
        return self.all()[index]

    def by_event_type(self, event_type: str) -> list[SentNotification]:
        """Those of ``event_type`` (exactly), oldest first."""
        return [sent for sent in self.all() if sent.event_type == event_type]

    def by_priority(self, priority: str) -> list[SentNotification]:
        """Those of ``priority`` (any case; ``warning`` is ``WARN``), oldest first."""
        wanted = _priority(priority)
        return [sent for sent in self.all() if sent.priority == wanted]

    def find(self, event_type: str | None = None, *, payload: Any = _ANY,
             priority: str | None = None,
             publisher_id: str | None = _ANY) -> list[SentNotification]:
        """Those matching every criterion given (``payload`` by equality)."""
        wanted = None if priority is None else _priority(priority)
        return [sent for sent in self.all()
                if (event_type is None or sent.event_type == event_type)
                and (payload is _ANY or sent.payload == payload)
                and (wanted is None or sent.priority == wanted)
                and (publisher_id is _ANY or sent.publisher_id == publisher_id)]

    def assert_sent(self, event_type: str, *, payload: Any = _ANY, priority: str | None = None,
                    publisher_id: str | None = _ANY, count: int | None = None) -> SentNotification:
        """The first notification of ``event_type`` matching ``payload``,
        ``priority`` and ``publisher_id`` (those given); ``AssertionError``
        listing what was sent if there is none, or if ``count`` is given and
        not exactly that many match."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        found = self.find(event_type, payload=payload, priority=priority,
                          publisher_id=publisher_id)
        if found and (count is None or len(found) == count):
            return found[0]
        wanted = [f"event_type={event_type!r}"]
        if payload is not _ANY:
            wanted.append(f"payload={payload!r}")
        if priority is not None:
            wanted.append(f"priority={_priority(priority)!r}")
        if publisher_id is not _ANY:
            wanted.append(f"publisher_id={publisher_id!r}")
        how_many = "a notification" if count is None else f"{count} notification(s)"
        raise AssertionError(f"expected {how_many} with {', '.join(wanted)}; "
                             f"{len(found)} matched. {self._listing()}")

    def assert_not_sent(self, event_type: str, *, priority: str | None = None) -> None:
        """``AssertionError`` if a notification of ``event_type`` (and
        ``priority``, if given) was sent."""
        __tracebackhide__ = True
        found = self.find(event_type, priority=priority)
        if found:
            raise AssertionError(f"expected no {event_type!r} notification; "
                                 f"{len(found)} sent. {self._listing()}")

    def _listing(self) -> str:
        sent = self.all()
        if not sent:
            return "Nothing was sent through the 'test' driver."
        lines = "\n".join(f"  {item}" for item in sent[:20])
        more = f"\n  ... and {len(sent) - 20} more" if len(sent) > 20 else ""
        return f"Sent through the 'test' driver ({len(sent)}):\n{lines}{more}"

    def clear(self) -> None:
        """Forget what was sent so far."""
        reset_test_notifications()
