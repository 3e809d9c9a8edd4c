"""The ``dovecote`` command line: one argparse parser per subcommand.

The transport URL is optional everywhere: each subcommand's positional
arguments are fixed in number, so the URL is the first of them exactly when
all of them are given (``dovecote call URL TOPIC METHOD``), and absent when
one fewer is (``dovecote call TOPIC METHOD``). Options may stand anywhere
(the subcommand's arguments are parsed with ``parse_intermixed_args``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..observe._control import dovecote_version
from ._support import PRIORITIES

__all__ = ["NOTIFY_PRIORITIES", "URL_ENV", "build"]

#: The environment variable holding the transport URL when none is given.
URL_ENV = "DOVECOTE_URL"

#: What ``--priority`` accepts wherever it is an option (as ``Notifier`` does:
#: ``warning`` is ``warn``); any case.
NOTIFY_PRIORITIES = [*PRIORITIES[:4], "warning", *PRIORITIES[4:]]

_URL_HELP = (
    "the transport URL, e.g. rabbit://user:pass@host:5672/. Optional: it is the first "
    "argument exactly when every argument is given; without it the URL comes from "
    f"--config-file's transport_url, else ${URL_ENV}")

_DESCRIPTION = f"""\
RPC and notifications from a shell: call, cast, notify, listen, serve, and
inspect running servers (servers, describe, ping, actors, events).

The transport URL is every subcommand's first argument, and optional: it is
the first argument exactly when all of the subcommand's arguments are given
("dovecote call URL TOPIC METHOD"); with one fewer ("dovecote call TOPIC
METHOD") it comes from --config-file FILE (oslo.config's [DEFAULT]
transport_url, with its [oslo_messaging_rabbit] or [oslo_messaging_amqp]
options), else from ${URL_ENV}. A URL given on the command line wins; a
config file's driver options apply to it too.
"""

_EPILOG = """\
Every subcommand takes --json (for scripts) and --help. Exit status: 0 done,
1 failed at the other end (a remote error, no reply, no server or queue for
the topic), 2 bad input (checked before anything is sent). When the reader of
its output goes away (dovecote ... | head), a command stops quietly with
status 0.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, for scripts")


def _url(parser: argparse.ArgumentParser) -> None:
    """The optional URL (first positional) and ``--config-file``."""
    parser.add_argument("url", nargs="?", metavar="URL", help=_URL_HELP)
    parser.add_argument(
        "--config-file", metavar="FILE",
        help="an oslo.config file: its [DEFAULT] transport_url (for notify, listen and "
        "dead-letters: [oslo_messaging_notifications] transport_url first) and its "
        "[oslo_messaging_rabbit] / [oslo_messaging_amqp] options; needs "
        "pip install 'dovecote[oslo]'")


def _timeout(parser: argparse.ArgumentParser, default: float, what: str) -> None:
    parser.add_argument("--timeout", type=float, default=default,
                        help=f"{what} (seconds, above 0 and at most 86400; default {default:g})")


def _rpc(parser: argparse.ArgumentParser, *, method: bool = True,
         server_help: str = "one server of the topic (target.server)") -> None:
    _url(parser)
    parser.add_argument("topic", metavar="TOPIC")
    if method:
        parser.add_argument("method", metavar="METHOD")
    parser.add_argument("--server", help=server_help)
    _timeout(parser, 30.0, "how long to wait for an answer")


def _call_options(parser: argparse.ArgumentParser) -> None:
    _rpc(parser)
    parser.add_argument("--namespace")
    parser.add_argument("--version", help="the API version, MAJOR.MINOR, e.g. 1.2")
    parser.add_argument("--args", default="{}", help="the arguments as a JSON object")
    parser.add_argument("--ctxt", default="{}", help="the context as a JSON object")


def _priority(text: str) -> str:
    return text.lower()


def _bus_commands(sub: Any) -> None:
    call = sub.add_parser("call", help="call a method and print its result")
    _call_options(call)
    cast = sub.add_parser("cast", help="cast a method (no reply)")
    _call_options(cast)
    cast.add_argument("--fanout", action="store_true", help="to every server of the topic")
    cast.add_argument("--allow-unroutable", action="store_true",
                      help="send even when no queue of the topic exists (it is then lost)")
    notify = sub.add_parser("notify", help="send a notification")
    _url(notify)
    notify.add_argument("event_type", metavar="EVENT_TYPE")
    notify.add_argument("--payload", default="{}", help="JSON")
    notify.add_argument("--ctxt", default="{}", help="the context as a JSON object")
    notify.add_argument("--priority", default="info", type=_priority, choices=NOTIFY_PRIORITIES,
                        help="default info; warning is sent as warn")
    notify.add_argument("--publisher-id", default="dovecote-cli")
    notify.add_argument("--topic", default="notifications")
    notify.add_argument(
        "--allow-unroutable", action="store_true",
        help="send even when the queue <topic>.<priority> does not exist (sending creates "
        "it, and it keeps notifications until a listener takes them)")
    listen = sub.add_parser("listen", help="print notifications as they arrive (Ctrl+C stops)")
    _url(listen)
    listen.add_argument("--topic", default="notifications")
    listen.add_argument("--priority", nargs="+", type=_priority, choices=NOTIFY_PRIORITIES,
                        help="only these priorities (default: all)")
    listen.add_argument("--pool", help="join this pool (shares notifications with its "
                        "members!); default: a pool of its own, removed on exit")
    serve = sub.add_parser("serve", help="run a server for endpoints from an import path",
                           description="With --json, every line on stderr is a JSON object "
                           "(the library's log lines and the command's own).")
    _url(serve)
    serve.add_argument("topic", metavar="TOPIC")
    serve.add_argument("endpoints", metavar="MODULE:ATTR",
                       help="a list of endpoints, or a callable returning one")
    serve.add_argument("--server", help="this server's name on the topic (default: host name)")
    serve.add_argument("--executor", choices=["threading", "blocking"], default="threading")
    serve.add_argument("--workers", type=int, default=8)


def _inspect_commands(sub: Any) -> None:
    servers = sub.add_parser(
        "servers", help="every server of a topic: host, pid, name, uptime, version",
        description="Asks every server of the topic at once (a fanout of the control "
        "endpoint's info) and prints those that answered within --timeout.")
    _url(servers)
    servers.add_argument("topic", metavar="TOPIC")
    _timeout(servers, 2.0, "how long to collect answers")
    describe = sub.add_parser("describe", help="the methods a server's endpoints expose")
    _rpc(describe, method=False, server_help="the server to ask (default: any of the topic)")
    ping = sub.add_parser("ping", help="print round-trip times, and which server answered")
    _rpc(ping, method=False)
    ping.add_argument("--count", type=int, default=3)
    actors = sub.add_parser("actors", help="a server's actors, as a table")
    _rpc(actors, method=False, server_help="the server to ask (default: any of the topic)")
    events = sub.add_parser("events", help="a server's recent events")
    _rpc(events, method=False, server_help="the server to ask (default: any of the topic, "
         "then that one)")
    events.add_argument("--actor", help="an actor's URN or class name")
    events.add_argument("--kind", choices=["listener", "dispatcher", "worker", "endpoint"])
    events.add_argument("--msg-id")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--follow", action="store_true", help="go on printing (Ctrl+C stops)")
    logs = sub.add_parser("logs", help="filter JSON-line logs (configure_logging's)")
    logs.add_argument("file", metavar="FILE")
    logs.add_argument("--actor", help="an actor's URN or class name")
    logs.add_argument("--event")
    logs.add_argument("--msg-id")
    logs.add_argument("--since", help="ISO 8601, e.g. 2026-11-29T10:00:00")
    logs.add_argument("--trace", metavar="MSG_ID", help="one message's way through the actors")
    url = sub.add_parser("url", help="how a transport URL parses, its driver and options",
                         description="Builds the transport as get_transport does (without "
                         "connecting): bad options are bad input, and warnings (an unknown "
                         "option) are shown on stderr.")
    _url(url)
    dead = sub.add_parser(
        "dead-letters", help="read, remove or replay parked notifications",
        description="take: print and remove; peek (or list): print and leave parked; "
        "replay: send again what is parked now, then stop.")
    dead.add_argument("action", choices=["take", "peek", "list", "replay"])
    _url(dead)
    dead.add_argument("topic", metavar="TOPIC")
    dead.add_argument("priority", metavar="PRIORITY",
                      help=f"one of {', '.join(NOTIFY_PRIORITIES)}")
    dead.add_argument("--limit", type=int, default=None, help="at most this many")
    dead.add_argument("--timeout", type=float, default=1.0,
                      help="stop once nothing arrived for this long (seconds)")


def build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and each subcommand's own by name."""
    parser = argparse.ArgumentParser(
        prog="dovecote", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dovecote {dovecote_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _bus_commands(sub)
    _inspect_commands(sub)
    for command in sub.choices.values():
        _common(command)
    return parser, dict(sub.choices)
