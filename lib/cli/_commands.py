"""Running a ``dovecote`` subcommand (``_parser`` builds the command line).

What the command's own input says is checked here first, before any
connection (exit status 2): numbers, API versions, priorities. Each
subcommand then returns an exit status or raises :class:`BadInput` (2) or
:class:`Failed` (1); :func:`run` turns every error into one line on stderr,
never a traceback, with passwords masked.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from .._errors import InvalidTransportURL, MessageDeliveryFailure, MessagingException
from . import _bus as bus
from . import _inspect as inspect
from ._connect import url
from ._logs import logs
from ._rpc import call, cast
from ._serve import serve
from ._servers import servers
from ._support import BadInput, Failed, err, first_line, positive, seconds

__all__ = ["check", "run"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "call": call, "cast": cast, "ping": inspect.ping, "actors": inspect.actors,
    "events": inspect.events, "describe": inspect.describe, "servers": servers,
    "notify": bus.notify, "listen": bus.listen, "serve": serve,
    "dead-letters": bus.dead_letters, "url": url, "logs": logs,
}

#: An API version as the dispatcher compares them: ``MAJOR`` or ``MAJOR.MINOR``.
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)?")


def check(args: argparse.Namespace) -> None:
    """Refuse what no command can use, before anything is sent: a
    ``--timeout`` that is not above 0 and at most a day (``inf`` and ``nan``
    too), counts not above 0, an API ``--version`` that is not MAJOR.MINOR,
    an unknown priority."""
    seconds("--timeout", getattr(args, "timeout", None))
    for option in ("count", "limit", "workers"):
        positive(f"--{option}", getattr(args, option, None))
    version = getattr(args, "version", None)
    if version is not None and not _VERSION.fullmatch(version):
        msg = f"--version {version!r} is not an API version: write MAJOR.MINOR, e.g. 1.2"
        raise BadInput(msg)
    if args.command == "dead-letters":
        bus.priority(args.priority)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` names; returns the exit status: 0 done,
    1 the other end failed or did not answer, 2 bad input (including a bad
    URL and a broker that cannot be reached)."""
    try:
        check(args)
        return _COMMANDS[args.command](args)
    except BadInput as exc:
        err(str(exc))
        return 2
    except Failed as exc:
        err(str(exc))
        return 1
    except InvalidTransportURL as exc:
        err(str(exc))
        return 2
    except MessageDeliveryFailure as exc:
        err(f"cannot reach the broker: {first_line(exc)}")
        return 2
    except (MessagingException, ValueError) as exc:
        err(first_line(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except Exception as exc:  # noqa: BLE001 - a command line shows no traceback
        err(f"unexpected {type(exc).__name__}: {first_line(exc)}")
        return 1
