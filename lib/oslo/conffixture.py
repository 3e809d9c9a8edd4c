"""``oslo_messaging.conffixture``: :class:`ConfFixture` for unit tests.

``self.useFixture(ConfFixture(cfg.CONF)).transport_url = "fake:/"`` gives
the test dovecote's in-process transport (``fake://`` is ``memory://``:
the same broker semantics, no network), with fresh in-process brokers for
each test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import fixtures
from oslo_config import cfg

from . import _config, _optdefs

__all__ = ["ConfFixture"]

#: The pre-``[oslo_messaging_notifications]`` names tests still override.
_LEGACY = {"notification_driver": "driver", "notification_transport_url": "transport_url",
           "notification_topics": "topics"}


def _legacy_names(func: Callable[..., Any], *, has_value: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if args and args[0] in _LEGACY:
            rest = args[1:2] if has_value else ()
            args = (_LEGACY[args[0]], *rest, _optdefs.NOTIFICATIONS_GROUP)
        return func(*args, **kwargs)

    wrapper.wrapped = func  # type: ignore[attr-defined]
    return wrapper


class ConfFixture(fixtures.Fixture):
    """Registers the messaging options on ``conf`` and lets a test set them:
    ``transport_url`` and ``response_timeout`` properties, and
    ``conf.set_override`` taking the legacy ``notification_*`` names. At
    cleanup the overrides are reset."""

    def __init__(self, conf: cfg.ConfigOpts, transport_url: str | None = None) -> None:
        super().__init__()
        self.conf = conf
        _config.register_opts(conf)
        if transport_url is not None:
            self.transport_url = transport_url

    def setUp(self) -> None:
        """Install the legacy names and fresh in-process brokers."""
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch("dovecote.drivers.memory._broker._brokers", {}))
        if not hasattr(self.conf.set_override, "wrapped"):
            self.conf.set_override = _legacy_names(self.conf.set_override, has_value=True)
        if not hasattr(self.conf.clear_override, "wrapped"):
            self.conf.clear_override = _legacy_names(self.conf.clear_override, has_value=False)
        self.addCleanup(self._restore)
        self.addCleanup(self.conf.reset)

    def _restore(self) -> None:
        for name in ("set_override", "clear_override"):
            method = getattr(self.conf, name)
            if hasattr(method, "wrapped"):
                setattr(self.conf, name, method.wrapped)

    @property
    def transport_url(self) -> Any:
        """``[DEFAULT] transport_url``."""
        return self.conf.transport_url

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        self.conf.set_override("transport_url", value)

    @property
    def response_timeout(self) -> Any:
        """``[DEFAULT] rpc_response_timeout``: a call's default timeout."""
        return self.conf.rpc_response_timeout

    @response_timeout.setter
    def response_timeout(self, value: int) -> None:
        self.conf.set_override("rpc_response_timeout", value)
