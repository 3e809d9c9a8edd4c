"""Where a subcommand's transport comes from: the URL on the command line,
else an oslo.config file's (``--config-file``), else ``$DOVECOTE_URL``; the
file's ``[oslo_messaging_rabbit]`` / ``[oslo_messaging_amqp]`` options apply
whichever URL wins, mapped onto driver options by :mod:`dovecote.oslo`
exactly as its ``get_transport(conf)`` maps them. Also ``dovecote url``,
which builds the transport as ``get_transport`` does and shows the result.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._transport import Transport, _load_driver_class, get_transport
from .._url import TransportURL, is_secret_option
from ._parser import URL_ENV
from ._support import BadInput, err, first_line, show, to_json

__all__ = ["Settings", "open_transport", "settings", "url"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """A transport as the command line, a config file and the environment
    say it: the URL, driver options, the control exchange, and where the URL
    came from."""

    url: str
    options: dict[str, Any]
    control_exchange: str | None
    source: str


def _positional(args: argparse.Namespace) -> str | None:
    """The first argument after the URL's place, when it looks like a URL
    itself: then the user gave a URL and left out an argument after it."""
    for name in ("topic", "event_type"):
        value = getattr(args, name, None)
        if isinstance(value, str) and "://" in value:
            return value
    return None


def settings(args: argparse.Namespace, *, notifications: bool = False) -> Settings:
    """The transport ``args`` ask for; ``notifications``: a config file's
    ``[oslo_messaging_notifications] transport_url`` comes first, as
    oslo.messaging's notification transports read it."""
    if args.url is None and (looks := _positional(args)) is not None:
        msg = (f"{looks!r} looks like a transport URL, but then an argument after it is "
               f"missing: see dovecote {args.command} --help")
        raise BadInput(msg)
    conf = _load_config(args.config_file) if getattr(args, "config_file", None) else None
    url, source = args.url, "the command line"
    if url is None and conf is not None:
        url, source = _config_url(conf, args.config_file, notifications=notifications), \
            f"--config-file {args.config_file}"
    if not url:
        url, source = os.environ.get(URL_ENV) or None, URL_ENV
    if not url:
        msg = ("no transport URL: give it as the first argument (e.g. "
               f"rabbit://user:pass@host:5672/), set {URL_ENV}, or name an oslo.config file "
               "with [DEFAULT] transport_url in --config-file")
        raise BadInput(msg)
    if conf is None:
        return Settings(url, {}, None, source)
    options, exchange = _config_options(conf, args.config_file, TransportURL.parse(url))
    return Settings(url, options, exchange, source)


def _load_config(path: str) -> Any:
    """An oslo.config object read from ``path``, with the options oslo.messaging
    registers (``dovecote.oslo`` registers the same)."""
    try:
        from oslo_config import cfg

        from ..oslo import _config
    except ImportError as exc:
        msg = (f"--config-file needs oslo.config, which is not installed ({first_line(exc)}): "
               "pip install 'dovecote[oslo]'")
        raise BadInput(msg) from None
    if not Path(path).is_file():
        msg = f"--config-file {path}: no such file"
        raise BadInput(msg)
    conf = cfg.ConfigOpts()
    _config.register_opts(conf)
    try:
        conf(args=[], default_config_files=[path])
    except cfg.Error as exc:
        raise BadInput(f"--config-file {path}: {first_line(exc)}") from None
    return conf


def _config_url(conf: Any, path: str, *, notifications: bool) -> str | None:
    from oslo_config import cfg

    from ..oslo import _config

    try:
        found = _config.notification_url(conf) if notifications else conf.transport_url
    except cfg.Error as exc:
        raise BadInput(f"--config-file {path}: {first_line(exc)}") from None
    return str(found) if found else None


def _config_options(conf: Any, path: str, url: TransportURL) -> tuple[dict[str, Any], str]:
    """The driver options and control exchange the file sets for ``url`` (a
    URL query parameter wins, as in ``dovecote.oslo``); an option dovecote
    does not implement is a warning line on stderr."""
    from oslo_config import cfg

    from ..oslo import _config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            options = _config.driver_options(conf, url)
            exchange = url.query.get("control_exchange") or conf.control_exchange
        except cfg.Error as exc:
            raise BadInput(f"--config-file {path}: {first_line(exc)}") from None
    for warning in caught:
        err(f"warning: {warning.message}")
    return options, str(exchange)


@contextlib.contextmanager
def open_transport(args: argparse.Namespace, *, notifications: bool = False,
                   **options: Any) -> Iterator[Transport]:
    """The transport ``args`` ask for (``options``: driver options of the
    command's own, over the config file's), cleaned up after use."""
    found = settings(args, notifications=notifications)
    transport = get_transport(found.url, control_exchange=found.control_exchange,
                              **{**found.options, **options})
    try:
        yield transport
    finally:
        transport.cleanup()


def url(args: argparse.Namespace) -> int:
    """``dovecote url``: how the URL parses, which driver it selects, and the
    options it and the config file set, after building the transport exactly
    as ``get_transport`` does (so a bad option is bad input, and the warnings
    ``get_transport`` logs, an unknown option among them, show on stderr).
    Nothing connects."""
    found = settings(args)
    parsed = TransportURL.parse(found.url)
    driver = _load_driver_class(parsed)
    get_transport(parsed, control_exchange=found.control_exchange, **found.options).cleanup()
    shown = {"url": str(parsed), "source": found.source,
             "driver": f"{driver.__module__}.{driver.__name__}",
             "hosts": [h.to_text() for h in parsed.hosts],
             "virtual_host": parsed.virtual_host,
             "options": _masked(parsed.query)}
    if found.options:
        shown["config_options"] = _masked(found.options)
    if args.json:
        print(to_json(shown))
    else:
        for key, value in shown.items():
            show(f"{key + ':':<16}{value if isinstance(value, str) else to_json(value)}")
    return 0


def _masked(options: dict[str, Any]) -> dict[str, Any]:
    return {key: "****" if is_secret_option(key) else value for key, value in options.items()}
