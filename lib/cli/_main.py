"""The ``dovecote`` command: poke at a bus from a shell.

    dovecote call [URL] TOPIC METHOD [--server S] [--args JSON] ...  call, print the result
    dovecote cast [URL] TOPIC METHOD [--fanout] ...                  cast
    dovecote notify [URL] EVENT_TYPE [--payload JSON] ...            send a notification
    dovecote listen [URL] [--topic T] [--priority P ...] [--pool P]  print notifications
    dovecote serve [URL] TOPIC MODULE:ATTR [--server S] ...          run a server
    dovecote servers [URL] TOPIC [--timeout SEC]                     every server of a topic
    dovecote describe [URL] TOPIC [--server S]                       what a server serves
    dovecote ping [URL] TOPIC [--server S] [--count N]               round-trip times
    dovecote actors [URL] TOPIC [--server S]                         a server's actors
    dovecote events [URL] TOPIC [--server S] [--follow] ...          a server's events
    dovecote logs FILE [--trace MSG_ID] ...                          filter JSON-line logs
    dovecote url [URL]                                               how a URL parses
    dovecote dead-letters take|peek|replay [URL] TOPIC PRIORITY      parked notifications
    dovecote --version

The URL is optional (``$DOVECOTE_URL`` or ``--config-file FILE``); see
:mod:`._parser` for how it is told apart. Every subcommand takes ``--json``
for output a script can read. Exit status: 0 done (also when the reader of
the output went away: ``dovecote ... | head``), 1 the call failed at the
other end (a remote error, no reply, no server or queue of the topic), 2 bad
input (checked before anything is sent). Passwords are masked everywhere;
what peers sent is escaped for the terminal.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from ..observe import configure_logging
from . import _commands as commands
from ._parser import build
from ._support import err, event_line, printable

__all__ = ["main", "parse", "run"]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as a namespace (``command`` names the subcommand);
    argparse exits with status 2 (or 0 for ``--help`` and ``--version``).
    A subcommand's options may stand anywhere among its arguments."""
    parser, subcommands = build()
    argv = list(argv)
    if argv and argv[0] in subcommands:
        args = subcommands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)  # --help, --version, or an error


def _reader_gone() -> int:
    """stdout's reader went away (``dovecote ... | head``): point stdout at
    /dev/null, so nothing more fails on the way out, and end with status 0:
    the reader had what it wanted."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (a test's StringIO): nothing is flushed at exit
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, 1 failed remotely, 2 bad input)."""
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        status = commands.run(args)
        sys.stdout.flush()  # a reader gone shows here, not at exit
    except BrokenPipeError:
        return _reader_gone()
    return status


class _Readable:
    """A stream for :func:`configure_logging` that writes each JSON line it
    gets as a line for a person (time, level, kind, actor, event, fields:
    the layout of ``dovecote events``), escaped for the terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                self._stream.write(printable(line) + "\n")
                continue
            trace = record.pop("exception", None)  # a traceback: as Python prints it
            self._stream.write(printable(event_line(record)) + "\n")
            for part in str(trace).splitlines() if trace else ():
                self._stream.write(printable(part) + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


def _configure_logging(args: argparse.Namespace) -> None:
    """The library's log lines on stderr: from INFO for ``serve``, from
    WARNING for ``listen`` (a broker it waits for) and ``url`` (what
    ``get_transport`` warns about), else off (the command says what went
    wrong in one line of its own) unless ``DOVECOTE_LOG_LEVEL`` (e.g.
    ``debug``) asks for them. Readable lines, or JSON lines with ``--json``."""
    default = {"serve": "info", "listen": "warning", "url": "warning"}.get(args.command)
    level = os.environ.get("DOVECOTE_LOG_LEVEL") or default or "critical"
    stream = sys.stderr if args.json else cast(TextIO, _Readable(sys.stderr))
    try:
        configure_logging(level=level, stream=stream)
    except ValueError as exc:
        err(f"DOVECOTE_LOG_LEVEL: {exc}")
        sys.exit(2)


def run() -> None:
    """The console script: stdout carries only the command's own output."""
    try:
        args = parse(sys.argv[1:])
    except BrokenPipeError:  # --help into a closed pipe
        sys.exit(_reader_gone())
    _configure_logging(args)
    try:
        status = commands.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        status = _reader_gone()
    sys.exit(status)


if __name__ == "__main__":
    run()
