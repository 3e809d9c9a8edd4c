"""``oslo_messaging.notify.notifier``: a :class:`Notifier` whose drivers,
topics and retry default to ``[oslo_messaging_notifications]``, with every
driver oslo.messaging ships (``messaging``, ``messagingv2``, ``log``,
``noop``, ``test`` and ``routing``)."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from oslo_config import cfg

from ...notify import _notifier
from ...observe._logging import get_logger
from .. import _config, _optdefs
from ..transport import get_notification_transport

__all__ = ["Notifier", "get_notification_transport"]

log = get_logger(__name__)

#: ``[oslo_messaging_notifications] routing_config``, registered when a
#: ``routing`` driver is used (as oslo.messaging's routing driver does).
ROUTING_OPT = cfg.StrOpt(
    "routing_config", default="",
    help="YAML file that routes notifications to drivers by event type and priority "
         "(read by the 'routing' notification driver).")


class _Routes:
    """The ``routing`` driver's rules: ``{group: {driver: {accepted_events: [...],
    accepted_priorities: [...]}}}``, loaded once from ``routing_config``."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf
        self._groups: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        import yaml  # type: ignore[import-untyped]  # only the routing driver needs it

        with self._lock:
            if self._groups is None:
                path = self._conf[_optdefs.NOTIFICATIONS_GROUP].routing_config if self._conf \
                    is not None else ""
                loaded = yaml.safe_load(Path(path).read_text()) if path else None
                self._groups = loaded if isinstance(loaded, dict) else {}
            return self._groups

    def drivers(self, event_type: str, priority: str) -> list[str]:
        """The drivers whose rules accept this notification."""
        chosen: set[str] = set()
        for group in self._load().values():
            for driver, rules in (group or {}).items():
                checks = []
                for key, patterns in (rules or {}).items():
                    if key == "accepted_events":
                        checks.append(any(fnmatch.fnmatch(event_type, p) for p in patterns))
                    elif key == "accepted_priorities":
                        checks.append(any(fnmatch.fnmatch(priority.lower(), str(p).lower())
                                          for p in patterns))
                if all(checks):
                    chosen.add(driver)
        return sorted(chosen)


class Notifier(_notifier.Notifier):
    """dovecote's :class:`~dovecote.Notifier` with oslo.messaging's defaults:
    ``driver``, ``topics`` and ``retry`` left ``None`` are read from the
    transport's ``[oslo_messaging_notifications]`` section (no driver there:
    the notifier is disabled, as in oslo)."""

    def __init__(
        self, transport: Any, publisher_id: str | None = None,
        driver: str | Iterable[str] | None = None, serializer: Any = None,
        retry: int | None = None, topics: Iterable[str] | None = None,
    ) -> None:
        conf = getattr(transport, "conf", None)
        section = None
        if conf is not None:
            _config.register_opts(conf)
            section = conf[_optdefs.NOTIFICATIONS_GROUP]
        if driver is None:
            driver = list(section.driver) if section is not None else ["messagingv2"]
        if topics is None and section is not None:
            topics = list(section.topics)
        if retry is None and section is not None:
            retry = section.retry
        if retry is not None and retry < 0:
            retry = None
        names = [driver] if isinstance(driver, str) else list(driver)
        self._routes = None
        if "routing" in names:
            names.remove("routing")
            if conf is not None:
                conf.register_opt(ROUTING_OPT, group=_optdefs.NOTIFICATIONS_GROUP)
            self._routes = _Routes(conf)
        super().__init__(transport, publisher_id, names or ["noop"], serializer, retry, topics)
        self._routing = self._routes is not None

    def is_enabled(self) -> bool:
        """False when no driver but ``noop`` is configured."""
        return self._routing or super().is_enabled()

    def _send(self, context: Any, message: dict[str, Any], priority: str, wire: Any) -> None:
        names = list(self.drivers)
        if self._routes is not None:
            for name in self._routes.drivers(str(message["event_type"]), priority):
                if name in _notifier.NOTIFIER_DRIVERS and name not in names:
                    names.append(name)
                elif name not in _notifier.NOTIFIER_DRIVERS:
                    log.warning("notification.unknown_driver", driver=name,
                                note="the routing config names a driver dovecote lacks")
        self._deliver(names, context, message, priority, wire)

    def prepare(self, publisher_id: Any = _notifier._UNSET,
                retry: Any = _notifier._UNSET) -> Notifier:
        """A notifier sharing this one's transport and drivers."""
        clone = super().prepare(publisher_id, retry)
        assert isinstance(clone, Notifier)
        return clone
