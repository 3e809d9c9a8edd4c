"""The ``dovecote`` subcommands that use the bus itself: ``notify``,
``listen``, ``serve``, ``dead-letters``, and ``url``, which only parses."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._target import Target
from .._transport import _load_driver_class
from .._url import TransportURL, is_secret_option
from ..notify._dead_letters import dead_letter_queue, replay, take_dead_letters
from ..notify._listener import get_notification_listener
from ..notify._notifier import Notifier
from ..rpc._server import get_rpc_server
from ._support import (
    PRIORITIES,
    BadInput,
    json_object,
    json_value,
    open_transport,
    progress,
    show,
    to_json,
)

__all__ = ["dead_letters", "listen", "notify", "serve", "url"]

#: How long ``listen`` and ``serve`` wait for their listeners to attach.
STARTUP_TIMEOUT = 15.0

#: ``x-expires`` of the pool queue ``listen`` makes for itself (seconds): a
#: ``listen`` killed with SIGKILL (or whose host died) leaves at most a
#: minute of notifications behind, while a running one that lost its
#: connection finds its queue again (the listener's longest wait between
#: reconnections, ``rabbit_interval_max``, is 30 s). The transport's
#: ``rabbit_transient_queues_ttl`` (30 minutes) would let it collect far more.
LISTEN_POOL_TTL = 60


def notify(args: argparse.Namespace) -> int:
    """``dovecote notify``: send one notification (``messagingv2``)."""
    payload, ctxt = json_value("--payload", args.payload), json_object("--ctxt", args.ctxt)
    priority = "warn" if args.priority == "warning" else args.priority
    with open_transport(args.url) as transport:
        notifier = Notifier(transport, publisher_id=args.publisher_id, topics=[args.topic],
                            retry=0)
        getattr(notifier, priority)(ctxt, args.event_type, payload)
    if args.json:
        print(to_json({"sent": True, "topic": f"{args.topic}.{priority}",
                       "event_type": args.event_type}))
    else:
        show(f"sent {args.event_type} to {args.topic}.{priority}")
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


def _until_signal(server: Any, what: str, ready: str,
                  stop: threading.Event | None = None) -> None:
    """Run ``server`` until Ctrl+C, SIGTERM or ``stop``, saying ``ready`` on
    stderr once its listeners are attached (exit status 2 when they cannot
    attach)."""
    stop = stop or threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        _attached(server, what)
        show(ready, stream=sys.stderr)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        server.wait(10)


def _attached(server: Any, what: str) -> None:
    """Wait until the listener of ``server`` has started; one that crashes
    first (an unreachable broker, a refused login) is bad input."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if _started(server):
            return
        failed = [e for e in server.events(kind="listener") if e["event"] == "listener.crashed"]
        if failed:
            msg = f"cannot {what}: {failed[0].get('error', 'the listener failed')}"
            raise BadInput(msg)
        time.sleep(0.05)
    msg = f"cannot {what}: no listener started within {STARTUP_TIMEOUT:g} s"
    raise BadInput(msg)


def _started(server: Any) -> bool:
    return any(e["event"] == "listener.started" for e in server.events(kind="listener"))


def listen(args: argparse.Namespace) -> int:
    """``dovecote listen``: print notifications until Ctrl+C or SIGTERM, in a
    pool of its own (deleted on exit, and expiring a minute after a ``listen``
    that could not delete it) unless ``--pool`` names one."""
    priorities = args.priority or PRIORITIES
    own = args.pool is None
    pool = args.pool or f"dovecote-listen-{uuid.uuid4().hex[:12]}"
    options = {"notification_pool_ttl": LISTEN_POOL_TTL} if own else {}
    stop = threading.Event()
    with open_transport(args.url, **options) as transport:
        server = get_notification_listener(
            transport, [Target(topic=args.topic)],
            [_printer(priorities, as_json=args.json, stop=stop)],
            pool=pool, executor="threading", max_workers=1, name=pool)
        shared = ("its own queue, removed on exit: the real listeners keep every notification"
                  if own else "a pool you named: its members SHARE the notifications")
        ready = (f"listening to {args.topic}.{{{','.join(priorities)}}} in pool {pool} "
                 f"({shared}); Ctrl+C stops")
        try:
            _until_signal(server, f"listen on {transport.url}", ready, stop)
        finally:
            if own and _started(server):
                transport.driver.delete_queue(pool)
                transport.driver.delete_queue(f"{pool}.dead")
                show(f"removed pool {pool}", stream=sys.stderr)
    return 0


def _import_endpoints(path: str) -> list[Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        msg = f"{path!r} is not MODULE:ATTR, e.g. myservice.api:endpoints"
        raise BadInput(msg)
    if str(Path.cwd()) not in sys.path:  # like `python -m`: modules of the current directory
        sys.path.insert(0, str(Path.cwd()))
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except ImportError as exc:
        msg = f"cannot import {module_name!r}: {exc}"
        raise BadInput(msg) from None
    except AttributeError:
        msg = f"module {module_name!r} has no attribute {attr!r}"
        raise BadInput(msg) from None
    except Exception as exc:  # noqa: BLE001 - the module's own code failed
        msg = f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        raise BadInput(msg) from None
    if callable(found) and not isinstance(found, type):
        try:
            found = found()
        except Exception as exc:  # noqa: BLE001 - the application's factory failed
            msg = f"{path}() raised {type(exc).__name__}: {exc}"
            raise BadInput(msg) from None
    if not isinstance(found, (list, tuple)):
        msg = f"{path} must be a list of endpoints, or a callable returning one"
        raise BadInput(msg)
    return list(found)


def serve(args: argparse.Namespace) -> int:
    """``dovecote serve``: run an RPC server, control endpoint on, until
    Ctrl+C or SIGTERM."""
    endpoints = _import_endpoints(args.endpoints)
    with open_transport(args.url) as transport:
        target = Target(topic=args.topic, server=args.server or os.uname().nodename)
        server = get_rpc_server(transport, target, endpoints, executor=args.executor,
                                max_workers=args.workers, control=True)
        ready = (f"serving {target.topic}.{target.server} on {transport.url} with "
                 f"{len(endpoints)} endpoint(s) and the control endpoint; Ctrl+C stops")
        what = f"serve on {transport.url}"
        if args.executor == "blocking":
            _serve_blocking(server, what, ready)
        else:
            _until_signal(server, what, ready)
    return 0


def _serve_blocking(server: Any, what: str, ready: str) -> None:
    """The blocking executor runs in this thread; another one says ``ready``
    (or stops it when it cannot attach). SIGTERM stops it like Ctrl+C."""
    failure: list[BadInput] = []

    def announce() -> None:
        try:
            _attached(server, what)
        except BadInput as exc:
            failure.append(exc)
            server.stop()
        else:
            show(ready, stream=sys.stderr)

    previous = signal.signal(signal.SIGTERM, lambda *_: server.stop())
    threading.Thread(target=announce, name="dovecote-serve-ready", daemon=True).start()
    try:
        server.start()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.wait(10)
    if failure:
        raise failure[0]


def url(args: argparse.Namespace) -> int:
    """``dovecote url``: how a URL parses and which driver it selects."""
    parsed = TransportURL.parse(args.url)
    driver = _load_driver_class(parsed)
    found = {"url": str(parsed), "driver": f"{driver.__module__}.{driver.__name__}",
             "hosts": [h.to_text() for h in parsed.hosts],
             "virtual_host": parsed.virtual_host,
             "options": {k: "****" if is_secret_option(k) else v for k, v in parsed.query.items()}}
    if args.json:
        print(to_json(found))
    else:
        for key, value in found.items():
            show(f"{key + ':':<14}{value if isinstance(value, str) else to_json(value)}")
    return 0


def _priority(text: str) -> str:
    """A notification priority as its dead-letter queue names it (``warning``
    is ``warn``), else :class:`BadInput`."""
    priority = text.lower()
    priority = "warn" if priority == "warning" else priority
    if priority not in PRIORITIES:
        msg = f"unknown priority {text!r}: one of {', '.join(PRIORITIES)}"
        raise BadInput(msg)
    return priority


def dead_letters(args: argparse.Namespace) -> int:
    """``dovecote dead-letters take|peek|replay``: read and remove, read and
    leave, or send again what is parked on ``<topic>.<priority>.dead``; a
    queue that does not exist is "no dead letters", never declared."""
    priority = _priority(args.priority)
    where = f"{args.topic}.{priority}"
    with open_transport(args.url) as transport:
        info = transport.driver.queue_info(dead_letter_queue(args.topic, priority))
        if info is not None and not info[1]:  # none, or none waiting: say so at once
            if args.action == "replay" and args.json:
                print(to_json({"replayed": 0, "to": where, "undecodable": 0}))
            elif not args.json:
                show(f"no dead letters for {where}")
            return 0
        if args.action == "replay":
            return _replay(transport, args, priority)
        for dead in take_dead_letters(transport, args.topic, priority, limit=args.limit,
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


def _replay(transport: Any, args: argparse.Namespace, priority: str) -> int:
    """Replay what is parked now (at most ``--limit``), then say what was done."""
    where = f"{args.topic}.{priority}"
    counter = progress()
    done = replay(transport, args.topic, priority, limit=args.limit, timeout=args.timeout,
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
             f"{dead_letter_queue(args.topic, priority)}")
    if done.came_back:
        show("stopped where the first one replayed came back: its endpoint still fails")
    return 0
