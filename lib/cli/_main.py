"""The ``dovecote`` command: poke at a bus from a shell.

    dovecote call URL TOPIC METHOD [--server S] [--args JSON] ...   call, print the result
    dovecote cast URL TOPIC METHOD [--fanout] ...                   cast
    dovecote notify URL EVENT_TYPE [--payload JSON] ...             send a notification
    dovecote listen URL [--topic T] [--priority P ...] [--pool P]   print notifications
    dovecote serve URL TOPIC MODULE:ATTR [--server S] ...           run a server
    dovecote ping URL TOPIC [--server S] [--count N]                round-trip times
    dovecote actors URL TOPIC --server S                            a server's actors
    dovecote events URL TOPIC --server S [--follow] ...             a server's events
    dovecote logs FILE [--trace MSG_ID] ...                         filter JSON-line logs
    dovecote url URL                                                how a URL parses
    dovecote dead-letters take|peek|replay URL TOPIC PRIORITY       parked notifications

Every subcommand takes ``--json`` (after its name) for output a script can
read. Exit status: 0 done, 1 the call failed at the other end (a remote
error, no reply, no server of the topic), 2 bad input (bad JSON or JSON
nested too deeply, a timeout that is not a number of seconds up to a day, an
unknown method or priority, a bad URL, an unreachable broker). Passwords are
masked everywhere; what peers sent is escaped for the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..observe._logging import configure_logging
from . import _commands as commands

__all__ = ["main", "run"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")


def _rpc(parser: argparse.ArgumentParser, *, method: bool = True) -> None:
    parser.add_argument("url", help="transport URL, e.g. rabbit://user:pass@host:5672/")
    parser.add_argument("topic")
    if method:
        parser.add_argument("method")
    parser.add_argument("--server", help="one server of the topic (target.server)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds, at most 86400 (default 30)")


def _call_options(parser: argparse.ArgumentParser) -> None:
    _rpc(parser)
    parser.add_argument("--namespace")
    parser.add_argument("--version", help="the API version, e.g. 1.2")
    parser.add_argument("--args", default="{}", help="the arguments as a JSON object")
    parser.add_argument("--ctxt", default="{}", help="the context as a JSON object")


def _bus_commands(sub: Any) -> None:
    call = sub.add_parser("call", help="call a method and print its result")
    _call_options(call)
    cast = sub.add_parser("cast", help="cast a method (no reply)")
    _call_options(cast)
    cast.add_argument("--fanout", action="store_true", help="to every server of the topic")
    notify = sub.add_parser("notify", help="send a notification")
    notify.add_argument("url")
    notify.add_argument("event_type")
    notify.add_argument("--payload", default="{}", help="JSON")
    notify.add_argument("--ctxt", default="{}", help="the context as a JSON object")
    notify.add_argument("--priority", default="info", choices=commands.NOTIFY_PRIORITIES)
    notify.add_argument("--publisher-id", default="dovecote-cli")
    notify.add_argument("--topic", default="notifications")
    listen = sub.add_parser("listen", help="print notifications as they arrive (Ctrl+C stops)")
    listen.add_argument("url")
    listen.add_argument("--topic", default="notifications")
    listen.add_argument("--priority", nargs="+", choices=commands.PRIORITIES,
                        help="only these priorities (default: all)")
    listen.add_argument("--pool", help="join this pool (shares notifications with its "
                        "members!); default: a pool of its own, removed on exit")
    serve = sub.add_parser("serve", help="run a server for endpoints from an import path")
    serve.add_argument("url")
    serve.add_argument("topic")
    serve.add_argument("endpoints", metavar="MODULE:ATTR",
                       help="a list of endpoints, or a callable returning one")
    serve.add_argument("--server", help="this server's name on the topic (default: host name)")
    serve.add_argument("--executor", choices=["threading", "blocking"], default="threading")
    serve.add_argument("--workers", type=int, default=8)


def _inspect_commands(sub: Any) -> None:
    ping = sub.add_parser("ping", help="print round-trip times to a server")
    _rpc(ping, method=False)
    ping.add_argument("--count", type=int, default=3)
    actors = sub.add_parser("actors", help="a server's actors, as a table")
    _rpc(actors, method=False)
    events = sub.add_parser("events", help="a server's recent events")
    _rpc(events, method=False)
    events.add_argument("--actor", help="an actor's URN or class name")
    events.add_argument("--kind", choices=["listener", "dispatcher", "worker", "endpoint"])
    events.add_argument("--msg-id")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--follow", action="store_true", help="go on printing (Ctrl+C stops)")
    logs = sub.add_parser("logs", help="filter JSON-line logs (configure_logging's)")
    logs.add_argument("file")
    logs.add_argument("--actor", help="an actor's URN or class name")
    logs.add_argument("--event")
    logs.add_argument("--msg-id")
    logs.add_argument("--since", help="ISO 8601, e.g. 2026-11-29T10:00:00")
    logs.add_argument("--trace", metavar="MSG_ID", help="one message's way through the actors")
    url = sub.add_parser("url", help="how a transport URL parses, and its driver")
    url.add_argument("url")
    dead = sub.add_parser(
        "dead-letters", help="read, remove or replay parked notifications",
        description="take: print and remove; peek (or list): print and leave parked; "
        "replay: send again what is parked now, then stop.")
    dead.add_argument("action", choices=["take", "peek", "list", "replay"])
    dead.add_argument("url")
    dead.add_argument("topic")
    dead.add_argument("priority", help=f"one of {', '.join(commands.PRIORITIES)}")
    dead.add_argument("--limit", type=int, default=None, help="at most this many")
    dead.add_argument("--timeout", type=float, default=1.0,
                      help="stop once nothing arrived for this long (seconds)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dovecote", description="RPC and notifications from a shell.",
        epilog="Exit status: 0 done, 1 failed at the other end, 2 bad input.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _bus_commands(sub)
    _inspect_commands(sub)
    for command in sub.choices.values():
        _common(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, 1 failed remotely, 2 bad input)."""
    args = _parser().parse_args(argv)
    return commands.run(args)


def run() -> None:
    """The console script. The library logs to stderr as JSON lines: ``serve``
    from INFO, ``listen`` from WARNING (a broker it waits for); the other
    subcommands say what went wrong in one line of their own, so their log
    lines are off unless ``DOVECOTE_LOG_LEVEL`` (e.g. ``debug``) asks for
    them. stdout carries only the command's own output."""
    default = {"serve": "info", "listen": "warning"}.get(sys.argv[1] if sys.argv[1:] else "")
    level = os.environ.get("DOVECOTE_LOG_LEVEL") or default or "critical"
    try:
        configure_logging(level=level)
    except ValueError as exc:
        commands.err(f"DOVECOTE_LOG_LEVEL: {exc}")
        sys.exit(2)
    sys.exit(main())


if __name__ == "__main__":
    run()
