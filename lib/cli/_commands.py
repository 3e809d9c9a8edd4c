"""Running a ``dovecote`` subcommand (``_cli`` parses the command line).

Each subcommand returns an exit status or raises :class:`BadInput` (2) or
:class:`Failed` (1); :func:`run` turns every error into one line on stderr,
never a traceback, with passwords masked.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._errors import InvalidTransportURL, MessageDeliveryFailure, MessagingException
from . import _bus as bus
from . import _rpc as rpc
from ._logs import logs
from ._support import PRIORITIES, BadInput, Failed, err, first_line, positive, seconds

__all__ = ["NOTIFY_PRIORITIES", "PRIORITIES", "err", "run"]

#: What ``notify --priority`` accepts (``warning`` is sent as ``warn``).
NOTIFY_PRIORITIES = [*PRIORITIES[:4], "warning", *PRIORITIES[4:]]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "call": rpc.call, "cast": rpc.cast, "ping": rpc.ping, "actors": rpc.actors,
    "events": rpc.events, "notify": bus.notify, "listen": bus.listen, "serve": bus.serve,
    "dead-letters": bus.dead_letters, "url": bus.url, "logs": logs,
}


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse counts and times no command can use, before anything is sent:
    ``--timeout`` above 0 and at most a day (not ``inf`` or ``nan``), counts
    above 0."""
    seconds("--timeout", getattr(args, "timeout", None))
    for option in ("count", "limit", "workers"):
        positive(f"--{option}", getattr(args, option, None))


def run(args: argparse.Namespace) -> int:
    """Run the subcommand ``args`` names; returns the exit status: 0 done,
    1 the other end failed or did not answer, 2 bad input (including a bad
    URL and a broker that cannot be reached)."""
    try:
        _check_numbers(args)
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
    except Exception as exc:  # noqa: BLE001 - a command line shows no traceback
        err(f"unexpected {type(exc).__name__}: {first_line(exc)}")
        return 1
