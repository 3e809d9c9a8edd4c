"""What an oslo.config object says, as dovecote reads it: the options
registered the way oslo.messaging registers them, the transport URL, and the
driver options a ``[oslo_messaging_rabbit]`` (or ``[oslo_messaging_amqp]``)
section sets.

A section's value goes to the driver only when it differs from oslo's
default, and a URL query parameter of the same name wins over it (dovecote's
own rule: the URL says most about one transport). An option dovecote does not
implement is registered, so config files load, and warned about once per
process when set to anything but its default.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from . import _optdefs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._url import TransportURL

__all__ = [
    "UnimplementedOptionWarning",
    "driver_options",
    "notification_url",
    "register_opts",
    "warn_unimplemented",
]

_AMQP1_SCHEMES = frozenset({"amqp1", "amqps", "qpid"})
_KOMBU_SCHEMES = frozenset({"rabbit", "kombu", "amqp", "pyamqp", "redis", "rediss"})
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


class UnimplementedOptionWarning(UserWarning):
    """A configuration option dovecote registers but does not act on was set."""


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the groups a transport reads (as oslo.messaging's drivers do;
    registering the same options again is a no-op)."""
    conf.register_opts(_optdefs.DEFAULT_OPTS)
    conf.register_opts(_optdefs.NOTIFICATION_OPTS, group=_optdefs.NOTIFICATIONS_GROUP)
    conf.register_opts(_optdefs.RABBIT_OPTS, group=_optdefs.RABBIT_GROUP)
    conf.register_opts(_optdefs.AMQP_OPTS, group=_optdefs.AMQP_GROUP)


def _section(conf: cfg.ConfigOpts, group: str) -> Any:
    return conf if group == "DEFAULT" else conf[group]


def _changed(conf: cfg.ConfigOpts, group: str, opts: Iterable[cfg.Opt]) -> Iterable[
        tuple[str, Any]]:
    section = _section(conf, group)
    for opt in opts:
        value = section[opt.dest]
        if value != opt.default:
            yield opt.dest, value


def warn_unimplemented(conf: cfg.ConfigOpts, groups: Iterable[str]) -> None:
    """One :class:`UnimplementedOptionWarning` per option (and process) set
    in ``groups`` that dovecote does not implement."""
    for group in groups:
        reasons = _optdefs.UNIMPLEMENTED.get(group, {})
        opts = [opt for opt in _opts_of(group) if opt.dest in reasons]
        for name, _value in _changed(conf, group, opts):
            with _warned_lock:
                if (group, name) in _warned:
                    continue
                _warned.add((group, name))
            warnings.warn(
                f"[{group}] {name} is set, but dovecote does not implement it "
                f"({reasons[name]}); it has no effect", UnimplementedOptionWarning, stacklevel=4,
            )


def _opts_of(group: str) -> list[cfg.Opt]:
    return {
        "DEFAULT": _optdefs.DEFAULT_OPTS,
        _optdefs.NOTIFICATIONS_GROUP: _optdefs.NOTIFICATION_OPTS,
        _optdefs.RABBIT_GROUP: _optdefs.RABBIT_OPTS,
        _optdefs.AMQP_GROUP: _optdefs.AMQP_OPTS,
    }[group]


def driver_options(conf: cfg.ConfigOpts, url: TransportURL) -> dict[str, Any]:
    """The driver options the config sets for ``url``'s scheme (nothing for
    ``memory://`` and ``fake://``), warning about unimplemented ones."""
    scheme = url.transport
    if scheme in _KOMBU_SCHEMES:
        group, mapping = _optdefs.RABBIT_GROUP, _optdefs.RABBIT_TO_DRIVER
    elif scheme in _AMQP1_SCHEMES:
        group, mapping = _optdefs.AMQP_GROUP, _optdefs.AMQP_TO_DRIVER
    else:
        warn_unimplemented(conf, ["DEFAULT"])
        return {}
    warn_unimplemented(conf, ["DEFAULT", group])
    mapped = [opt for opt in _opts_of(group) if opt.dest in mapping]
    options: dict[str, Any] = {}
    for name, value in _changed(conf, group, mapped):
        driver_name = mapping[name]
        if driver_name not in url.query and name not in url.query:
            options[driver_name] = value
    return options


def notification_url(conf: cfg.ConfigOpts) -> str:
    """``[oslo_messaging_notifications] transport_url``, else ``[DEFAULT]``'s."""
    value = conf[_optdefs.NOTIFICATIONS_GROUP].transport_url
    return str(value) if value else str(conf.transport_url)


def reset_warnings() -> None:
    """Forget which options were warned about (for tests)."""
    with _warned_lock:
        _warned.clear()
