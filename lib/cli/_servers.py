"""``dovecote servers``: every server of a topic, found by one fanout.

A fanout cannot return values through a client (``call`` refuses a fanout
target), so the command works one level down, with the driver contract every
transport implements: it registers a :class:`Gathered` reply for a fresh
message id (``Driver.expect_reply``) and sends the control endpoint's
``info`` request to the topic's fanout exchange *with* that id and the
driver's reply queue, as a call would. Every server of the topic gets its own
copy through its fanout queue and answers it like any call, so each reply
comes back to the one reply queue under the one id; :class:`Gathered`
keeps them all (a plain call keeps the first) until ``--timeout`` has
passed. Nothing new runs on the servers beyond the ``info`` method, no queue
is declared for the answers, and it works wherever calls and fanout casts do
(``memory://``, ``rabbit://``, ``amqp1://``). A server that does not serve
``info`` (an oslo.messaging server, a dovecote server older than control
endpoint 1.1) answers with a failure: it is counted, not named.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Mapping
from typing import Any

from .. import _wire
from .._target import Target
from .._transport import Transport
from ..drivers.base import PendingReply
from ..observe._control import CONTROL_NAMESPACE, CONTROL_VERSION
from ._connect import open_transport
from ._rpc import exists
from ._support import Failed, show, table, to_json

__all__ = ["Gathered", "gather", "servers"]


class Gathered(PendingReply):
    """A pending reply that keeps every answer to its message id (one per
    server that got the fanout), not only the first; heartbeats are dropped."""

    __slots__ = ("answers",)

    def __init__(self, msg_id: str, *, timeout: float) -> None:
        super().__init__(msg_id, timeout=timeout)
        self.answers: list[Mapping[str, Any]] = []

    def deliver(self, reply: Mapping[str, Any]) -> None:
        if reply.get("ending") is False and reply.get("result") is None \
                and not reply.get("failure"):
            return
        self.answers.append(reply)


def gather(transport: Transport, topic: str, method: str, *, timeout: float,
           version: str = CONTROL_VERSION) -> list[Mapping[str, Any]]:
    """Ask every server of ``topic`` for the control endpoint's ``method`` and
    return the replies that arrived within ``timeout`` seconds."""
    driver = transport.driver
    pending = Gathered(_wire.new_id(), timeout=timeout)
    message = {"method": method, "args": {}, "namespace": CONTROL_NAMESPACE, "version": version}
    driver.expect_reply(pending)
    try:
        driver.send(Target(topic=topic, fanout=True), {}, message, reply=pending,
                    timeout=timeout, retry=0)
        threading.Event().wait(timeout)  # the collection window: every answer counts
    finally:
        driver.forget(pending)
    return list(pending.answers)


def _uptime(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "?"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _listeners(info: dict[str, Any]) -> str:
    found = info.get("listeners")
    if not isinstance(found, list):
        return "?"
    return "; ".join(f"{item.get('target')} on {item.get('transport')}"
                     for item in found if isinstance(item, dict))


def _sorted(answers: list[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The servers that said who they are (one each, in name order), and how
    many answered without (a failure or no identity)."""
    known: dict[tuple[str, str, str], dict[str, Any]] = {}
    unknown = 0
    for reply in answers:
        result = reply.get("result")
        if reply.get("failure") or not isinstance(result, dict) \
                or not isinstance(result.get("server"), str):
            unknown += 1
            continue
        known.setdefault((result["server"], str(result.get("host")), str(result.get("pid"))),
                         result)
    return [known[key] for key in sorted(known)], unknown


_COLUMNS = ["server", "host", "pid", "uptime", "version", "listeners"]


def servers(args: argparse.Namespace) -> int:
    """``dovecote servers``: the servers of a topic that answered within
    ``--timeout`` (exit status 1 when none did)."""
    with open_transport(args) as transport:
        args.server = None
        exists(transport, args, server=False)
        answers = gather(transport, args.topic, "info", timeout=args.timeout)
    found, unknown = _sorted(answers)
    if args.json:
        print(to_json({"topic": args.topic, "servers": found, "unidentified": unknown}))
    elif found:
        rows = [{**info, "uptime": _uptime(info.get("uptime_s")), "listeners": _listeners(info)}
                for info in found]
        for line in table(rows, _COLUMNS):
            show(line)
    if unknown:
        show(f"{unknown} more server(s) of {args.topic} answered without dovecote's control "
             f"endpoint {CONTROL_VERSION} (oslo.messaging servers, or older dovecote ones)",
             stream=sys.stderr)
    if not found and not unknown:
        msg = (f"no server of topic {args.topic} answered within {args.timeout:g} s "
               "(--timeout waits longer)")
        raise Failed(msg)
    return 0
