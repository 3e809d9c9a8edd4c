"""The ``dovecote`` command: check a transport URL, read or replay dead letters.

    dovecote url rabbit://user:pass@host:5672/
    dovecote dead-letters take URL TOPIC PRIORITY [--limit N]     (JSON lines; removes them)
    dovecote dead-letters replay URL TOPIC PRIORITY [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ._dead_letters import replay_dead_letters, take_dead_letters
from ._errors import MessagingException
from ._logging import configure_logging
from ._transport import _load_driver_class, get_transport
from ._url import TransportURL

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dovecote", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    url = commands.add_parser("url", help="parse a transport URL and name its driver")
    url.add_argument("url")
    dead = commands.add_parser("dead-letters", help="read or replay parked notifications")
    dead.add_argument("action", choices=["take", "replay"])
    dead.add_argument("url")
    dead.add_argument("topic")
    dead.add_argument("priority")
    dead.add_argument("--limit", type=int, default=None)
    dead.add_argument("--timeout", type=float, default=1.0,
                      help="stop once nothing arrived for this long (seconds)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "url":
            parsed = TransportURL.parse(args.url)
            driver = _load_driver_class(parsed)
            print(json.dumps({
                "url": str(parsed), "driver": f"{driver.__module__}.{driver.__name__}",
                "hosts": [h.to_text() for h in parsed.hosts],
                "virtual_host": parsed.virtual_host, "options": parsed.query,
            }, indent=2))
            return 0
        with get_transport(args.url) as transport:
            if args.action == "take":
                for dead in take_dead_letters(transport, args.topic, args.priority,
                                              limit=args.limit, timeout=args.timeout):
                    print(json.dumps({"reason": dead.reason, "redeliveries": dead.redeliveries,
                                      "error": dead.error, "ctxt": dead.ctxt,
                                      "message": dead.message}, default=str))
            else:
                count = replay_dead_letters(transport, args.topic, args.priority,
                                            limit=args.limit, timeout=args.timeout)
                print(f"replayed {count} notification(s) to {args.topic}.{args.priority}")
    except MessagingException as exc:
        print(f"dovecote: {exc}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """The console script: warnings and errors go to stderr as JSON lines,
    so stdout carries only the command's own output."""
    configure_logging(level="warning")
    sys.exit(main())


if __name__ == "__main__":
    run()
