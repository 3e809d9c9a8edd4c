"""``dovecote serve``, and running a server until Ctrl+C or SIGTERM (which
``listen`` shares)."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .._target import Target
from ..rpc._server import get_rpc_server
from ._connect import open_transport
from ._support import BadInput, status

__all__ = ["STARTUP_TIMEOUT", "serve", "started", "until_signal"]

#: How long ``listen`` and ``serve`` wait for their listeners to attach.
STARTUP_TIMEOUT = 15.0


def until_signal(server: Any, what: str, ready: Any,
                 stop: threading.Event | None = None) -> None:
    """Run ``server`` until Ctrl+C, SIGTERM or ``stop``, calling ``ready()``
    once its listeners are attached (exit status 2 when they cannot attach)."""
    stop = stop or threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        _attached(server, what)
        ready()
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
        if started(server):
            return
        failed = [e for e in server.events(kind="listener") if e["event"] == "listener.crashed"]
        if failed:
            msg = f"cannot {what}: {failed[0].get('error', 'the listener failed')}"
            raise BadInput(msg)
        time.sleep(0.05)
    msg = f"cannot {what}: no listener started within {STARTUP_TIMEOUT:g} s"
    raise BadInput(msg)


def started(server: Any) -> bool:
    """Whether a listener of ``server`` has started."""
    return any(e["event"] == "listener.started" for e in server.events(kind="listener"))


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
    with open_transport(args) as transport:
        target = Target(topic=args.topic, server=args.server or os.uname().nodename)
        server = get_rpc_server(transport, target, endpoints, executor=args.executor,
                                max_workers=args.workers, control=True)
        text = (f"serving {target.topic}.{target.server} on {transport.url} with "
                f"{len(endpoints)} endpoint(s) and the control endpoint; Ctrl+C stops")

        def ready() -> None:
            status("cli.serving", text, as_json=args.json, topic=target.topic,
                   server=target.server, transport=str(transport.url),
                   endpoints=len(endpoints))

        what = f"serve on {transport.url}"
        if args.executor == "blocking":
            _serve_blocking(server, what, ready)
        else:
            until_signal(server, what, ready)
    return 0


def _serve_blocking(server: Any, what: str, ready: Any) -> None:
    """The blocking executor runs in this thread; another one calls ``ready``
    (or stops it when it cannot attach). SIGTERM stops it like Ctrl+C."""
    failure: list[BadInput] = []

    def announce() -> None:
        try:
            _attached(server, what)
        except BadInput as exc:
            failure.append(exc)
            server.stop()
        else:
            ready()

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
