"""The ``dovecote`` subcommands for notifications: ``notify``, ``listen``
and ``dead-letters``. Their transport is a notification transport: with
``--config-file``, ``[oslo_messaging_notifications] transport_url`` first."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from .._target import Target
from ..notify._dead_letters import dead_letter_queue, replay, take_dead_letters
from ..notify._listener import get_notification_listener
from ..notify._notifier import Notifier
from ._connect import open_transport
from ._serve import started, until_signal
from ._support import (
    PRIORITIES,
    BadInput,
    Failed,
    json_object,
    json_value,
    progress,
    show,
    status,
    to_json,
)

__all__ = ["dead_letters", "listen", "notify", "priority"]

#: ``x-expires`` of the pool queue ``listen`` makes for itself (seconds): a
#: ``listen`` killed with SIGKILL (or whose host died) leaves at most a
#: minute of notifications behind, while a running one that lost its
#: connection finds its queue again (the listener's longest wait between
#: reconnections, ``rabbit_interval_max``, is 30 s). The transport's
#: ``rabbit_transient_queues_ttl`` (30 minutes) would let it collect far more.
LISTEN_POOL_TTL = 60


def notify(args: argparse.Namespace) -> int:
    """``dovecote notify``: send one notification (``messagingv2``). Where
    the transport can tell, a ``<topic>.<priority>`` queue that does not exist
    is "no queue" (exit status 1) unless ``--allow-unroutable``: sending would
    create it, and it would keep notifications until a listener comes."""
    payload, ctxt = json_value("--payload", args.payload), json_object("--ctxt", args.ctxt)
    level = priority(args.priority)
    where = f"{args.topic}.{level}"
    with open_transport(args, notifications=True) as transport:
        if not args.allow_unroutable:
            info = transport.driver.queue_info(where)
            if info is not None and not info[0]:
                msg = (f"no queue {where}: no listener of topic {args.topic} outside a pool has "
                       "listened for it, and nothing was sent there (check --topic and "
                       "--priority; --allow-unroutable sends anyway, creating the queue, which "
                       "keeps notifications until a listener takes them)")
                raise Failed(msg)
        notifier = Notifier(transport, publisher_id=args.publisher_id, topics=[args.topic],
                            retry=0)
        getattr(notifier, level)(ctxt, args.event_type, payload)
    if args.json:
        print(to_json({"sent": True, "topic": where, "event_type": args.event_type}))
    else:
        show(f"sent {args.event_type} to {where}")
    return 0


def notification_line(priority: str, publisher_id: Any, event_type: Any, payload: Any,
                      metadata: Any) -> str:
    """How ``listen`` shows one notification to a human (:func:`show` escapes it)."""
    stamp = metadata.get("timestamp", "") if isinstance(metadata, dict) else ""
    return (f"{stamp}  {priority:<8}  {event_type}  publisher={publisher_id}  "
            f"payload={to_json(payload)}")


def _printer(priorities: list[str], *, as_json: bool, stop: threading.Event) -> Any:
    """An endpoint printing every notification of ``priorities``, one per line.
    It never fails (a notification it failed on would be parked on the real
    ``<topic>.<priority>.dead``): once stdout is gone (``listen | head``), it
    sets ``stop``."""

    def method(priority: str) -> Callable[..., None]:
        def printed(ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                    metadata: Any) -> None:
            if stop.is_set():
                return
            try:
                if as_json:
                    print(to_json({"priority": priority, "publisher_id": publisher_id,
                                   "event_type": event_type, "payload": payload,
                                   "ctxt": ctxt, "metadata": metadata}), flush=True)
                else:
                    show(notification_line(priority, publisher_id, event_type, payload,
                                           metadata))
            except OSError:  # the reader is gone: stop, quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
                stop.set()
        return printed

    return type("Printer", (), {p: staticmethod(method(p)) for p in priorities})()


def listen(args: argparse.Namespace) -> int:
    """``dovecote listen``: print notifications until Ctrl+C or SIGTERM, in a
    pool of its own (deleted on exit, and expiring a minute after a ``listen``
    that could not delete it) unless ``--pool`` names one."""
    priorities = list(dict.fromkeys(priority(p) for p in args.priority or PRIORITIES))
    own = args.pool is None
    pool = args.pool or f"dovecote-listen-{uuid.uuid4().hex[:12]}"
    options = {"notification_pool_ttl": LISTEN_POOL_TTL} if own else {}
    stop = threading.Event()
    with open_transport(args, notifications=True, **options) as transport:
        server = get_notification_listener(
            transport, [Target(topic=args.topic)],
            [_printer(priorities, as_json=args.json, stop=stop)],
            pool=pool, executor="threading", max_workers=1, name=pool)
        shared = ("its own queue, removed on exit: the real listeners keep every notification"
                  if own else "a pool you named: its members SHARE the notifications")
        text = (f"listening to {args.topic}.{{{','.join(priorities)}}} in pool {pool} "
                f"({shared}); Ctrl+C stops")

        def ready() -> None:
            status("cli.listening", text, as_json=args.json, topic=args.topic,
                   priorities=priorities, pool=pool, own_pool=own)

        try:
            until_signal(server, f"listen on {transport.url}", ready, stop)
        finally:
            if own and started(server):
                transport.driver.delete_queue(pool)
                transport.driver.delete_queue(f"{pool}.dead")
                status("cli.pool_removed", f"removed pool {pool}", as_json=args.json,
                       pool=pool)
    return 0


def priority(text: str) -> str:
    """A notification priority as its dead-letter queue names it (``warning``
    is ``warn``), else :class:`BadInput`."""
    level = text.lower()
    level = "warn" if level == "warning" else level
    if level not in PRIORITIES:
        msg = f"unknown priority {text!r}: one of {', '.join(PRIORITIES)} (or warning)"
        raise BadInput(msg)
    return level


def dead_letters(args: argparse.Namespace) -> int:
    """``dovecote dead-letters take|peek|replay``: read and remove, read and
    leave, or send again what is parked on ``<topic>.<priority>.dead``; a
    queue that does not exist is "no dead letters", never declared."""
    level = priority(args.priority)
    where = f"{args.topic}.{level}"
    with open_transport(args, notifications=True) as transport:
        info = transport.driver.queue_info(dead_letter_queue(args.topic, level))
        if info is not None and not info[1]:  # none, or none waiting: say so at once
            if args.action == "replay" and args.json:
                print(to_json({"replayed": 0, "to": where, "undecodable": 0}))
            elif not args.json:
                show(f"no dead letters for {where}")
            return 0
        if args.action == "replay":
            return _replay(transport, args, level)
        for dead in take_dead_letters(transport, args.topic, level, limit=args.limit,
                                      timeout=args.timeout, remove=args.action == "take"):
            if args.json:
                print(to_json({"reason": dead.reason, "redeliveries": dead.redeliveries,
                               "error": dead.error, "ctxt": dead.ctxt,
                               "message": dead.message}))
            else:
                message = dead.message
                show(f"{message.get('event_type', '?')}  redeliveries={dead.redeliveries}  "
                     f"reason={dead.reason or dead.error}  "
                     f"payload={to_json(message.get('payload'))}")
    return 0


def _replay(transport: Any, args: argparse.Namespace, level: str) -> int:
    """Replay what is parked now (at most ``--limit``), then say what was done."""
    where = f"{args.topic}.{level}"
    counter = progress()
    done = replay(transport, args.topic, level, limit=args.limit, timeout=args.timeout,
                  progress=counter)
    if counter is not None:
        print(file=sys.stderr)
    if args.json:
        print(to_json({"replayed": done.replayed, "to": where,
                       "undecodable": done.undecodable}))
        return 0
    show(f"replayed {done.replayed} notification(s) to {where}")
    if done.undecodable:
        show(f"left {done.undecodable} that cannot be decoded on "
             f"{dead_letter_queue(args.topic, level)}")
    if done.came_back:
        show("stopped where the first one replayed came back: its endpoint still fails")
    return 0
