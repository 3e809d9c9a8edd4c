"""Sending notifications: :class:`Notifier` and its drivers.

Drivers, as in oslo.messaging: ``messagingv2`` (the default: enveloped JSON on
the transport), ``messaging`` (bare JSON, the old format), ``log`` (one
log line per notification), ``noop`` (nothing) and ``test`` (kept in
memory for tests, see :func:`get_test_notifications`). Several at once are
allowed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import _wire
from .._serializer import NoOpSerializer, Serializer
from .._target import Target
from ..observe import _autotrace, _probes
from ..observe._logging import get_logger

if TYPE_CHECKING:
    from .._transport import Transport

__all__ = [
    "NOTIFIER_DRIVERS",
    "Notifier",
    "get_test_notifications",
    "reset_test_notifications",
]

log = get_logger(__name__)
NOTIFIER_DRIVERS = ("messagingv2", "messaging", "log", "noop", "test")
_LOG_LEVELS = {"AUDIT": "info", "DEBUG": "debug", "INFO": "info", "WARN": "warning",
               "ERROR": "error", "CRITICAL": "critical", "SAMPLE": "info"}
_test_store: list[dict[str, Any]] = []
_test_lock = threading.Lock()
_UNSET: Any = object()


def get_test_notifications() -> list[dict[str, Any]]:
    """What notifiers with the ``test`` driver sent: dicts with ``ctxt``,
    ``message``, ``priority``, ``retry`` and ``topics``, oldest first."""
    with _test_lock:
        return list(_test_store)


def reset_test_notifications() -> None:
    """Forget what the ``test`` driver kept."""
    with _test_lock:
        _test_store.clear()


class Notifier:
    """Sends notifications ``{message_id, publisher_id, event_type, priority,
    payload, timestamp}`` to ``<topic>.<priority>`` for each topic.

    >>> notifier = Notifier(transport, publisher_id="compute.host-1")
    >>> notifier.info({}, "compute.instance.create.end", {"id": "i-1"})
    """

    def __init__(
        self, transport: Transport, publisher_id: str | None = None,
        driver: str | Iterable[str] | None = None, serializer: Serializer | None = None,
        retry: int | None = None, topics: Iterable[str] | None = None,
    ) -> None:
        self.transport = transport
        self.publisher_id = publisher_id
        _autotrace.autoload()
        drivers = [driver] if isinstance(driver, str) else list(driver or ["messagingv2"])
        unknown = [name for name in drivers if name not in NOTIFIER_DRIVERS]
        if unknown:
            msg = (f"unknown notifier driver(s) {', '.join(map(repr, unknown))}; "
                   f"use one or more of {', '.join(NOTIFIER_DRIVERS)}")
            raise ValueError(msg)
        self.drivers = drivers
        self.serializer = serializer or NoOpSerializer()
        self.retry = retry
        self.topics = list(topics) if topics is not None else ["notifications"]
        #: ``<topic>.<priority>`` targets, built once (topics x priorities: a few).
        self._targets: dict[tuple[str, str], Target] = {}

    def prepare(self, publisher_id: str | None = _UNSET, retry: int | None = _UNSET) -> Notifier:
        """A notifier sharing this one's transport and drivers, with
        ``publisher_id`` and/or ``retry`` replaced."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        if publisher_id is not _UNSET:
            clone.publisher_id = publisher_id
        if retry is not _UNSET:
            clone.retry = retry
        return clone

    def is_enabled(self) -> bool:
        """False when the only driver is ``noop``: callers may skip building payloads."""
        return any(name != "noop" for name in self.drivers)

    def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> None:
        context = self.serializer.serialize_context(ctxt)
        message = {
            "message_id": _wire.new_uuid(),
            "publisher_id": self.publisher_id,
            "event_type": event_type,
            "priority": priority,
            "payload": self.serializer.serialize_entity(context, payload),
            "timestamp": _wire.utc_timestamp(),
        }
        sending = wire = None
        if _probes.probes:
            sending = _probes.Sending(
                "notify", ",".join(self.topics), event_type, driver=self.transport.driver,
                target=self._target(self.topics[0], priority) if len(self.topics) == 1 and any(
                    name in ("messagingv2", "messaging") for name in self.drivers) else None,
                message_id=message["message_id"])
            wire = sending.start(context)
        try:
            self._send(context, message, priority, wire or context)
        except BaseException as exc:
            if sending is not None:
                sending.finish(exc)
            raise
        if sending is not None:
            sending.finish(None)

    def _target(self, topic: str, priority: str) -> Target:
        """The ``<topic>.<priority>`` target, built once."""
        target = self._targets.get((topic, priority))
        if target is None:
            target = self._targets[topic, priority] = Target(topic=f"{topic}.{priority.lower()}")
        return target

    def _send(self, context: Any, message: dict[str, Any], priority: str, wire: Any) -> None:
        """Hand ``message`` to each driver (the transport ones get the ``wire``
        context: the caller's, plus the probes' carrier if any)."""
        self._deliver(self.drivers, context, message, priority, wire)

    def _deliver(self, drivers: Iterable[str], context: Any, message: dict[str, Any],
                 priority: str, wire: Any) -> None:
        for name in drivers:
            if name in ("messagingv2", "messaging"):
                version = 2.0 if name == "messagingv2" else 1.0
                for topic in self.topics:
                    self.transport.driver.send_notification(
                        self._target(topic, priority), wire, message, version=version,
                        retry=self.retry)
            elif name == "log":
                getattr(log, _LOG_LEVELS[priority])(
                    "notification", event_type=message["event_type"],
                    publisher_id=self.publisher_id, priority=priority,
                    message_id=message["message_id"], payload=message["payload"],
                )
            elif name == "test":
                with _test_lock:
                    _test_store.append({"ctxt": context, "message": dict(message),
                                        "priority": priority, "retry": self.retry,
                                        "topics": list(self.topics)})

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an ``AUDIT`` notification."""
        self._notify(ctxt, event_type, payload, "AUDIT")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a ``DEBUG`` notification."""
        self._notify(ctxt, event_type, payload, "DEBUG")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an ``INFO`` notification."""
        self._notify(ctxt, event_type, payload, "INFO")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a ``WARN`` notification."""
        self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an ``ERROR`` notification."""
        self._notify(ctxt, event_type, payload, "ERROR")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a ``CRITICAL`` notification."""
        self._notify(ctxt, event_type, payload, "CRITICAL")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a ``SAMPLE`` notification."""
        self._notify(ctxt, event_type, payload, "SAMPLE")
