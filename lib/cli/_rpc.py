"""The ``dovecote`` subcommands that call a server: ``call``, ``cast``,
``ping``, and the control endpoint's ``actors`` and ``events``.

Their messages go out mandatory (``at_least_once``) and, where the transport
can tell, after a look for the target's queue: a topic or server that does
not exist is "no server of topic X" at once (exit status 1), not a wait for
the whole timeout. ``amqp1://`` cannot return an unroutable message, so there
the look alone tells (``addressing=rabbitmq``); where neither can, the
command waits for its timeout as before."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .._errors import (
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    UnsupportedVersion,
)
from .._target import Target
from .._transport import Transport
from ..observe._control import CONTROL_NAMESPACE, MAX_EVENTS
from ..rpc._client import get_rpc_client
from ._support import (
    BadInput,
    Failed,
    err,
    event_line,
    first_line,
    json_object,
    open_transport,
    show,
    table,
    to_json,
)

__all__ = ["actors", "call", "cast", "events", "ping"]


def _client(transport: Transport, args: argparse.Namespace, *, namespace: str | None = None,
            version: str | None = None, fanout: bool = False) -> Any:
    """A client for the command's target: mandatory unless it is a fanout."""
    target = Target(topic=args.topic, server=args.server, namespace=namespace,
                    version=version, fanout=fanout)
    return get_rpc_client(transport, target, timeout=args.timeout, retry=0,
                          transport_options=None if fanout else {"at_least_once": True})


def _where(args: argparse.Namespace) -> str:
    return f"{args.topic}.{args.server}" if args.server else str(args.topic)


def _no_server(args: argparse.Namespace) -> Failed:
    server = f" {args.server}" if args.server else ""
    return Failed(f"no server{server} of topic {args.topic}: nothing receives its messages "
                  "(check the topic and --server, or start the server)")


def _exists(transport: Transport, args: argparse.Namespace) -> None:
    """Fail at once when the target's queue (``<topic>`` or ``<topic>.<server>``,
    which every server of it declares) does not exist, where the transport can
    tell: the check for a transport that cannot return unroutable messages."""
    info = transport.driver.queue_info(_where(args))
    if info is not None and not info[0]:
        raise _no_server(args)


def _remote_call(client: Any, ctxt: dict[str, Any], method: str, args: argparse.Namespace,
                 **kwargs: Any) -> Any:
    """``client.call`` with its failures sorted: unknown method or version is
    bad input, no reply or a remote error is a failure."""
    try:
        return client.call(ctxt, method, **kwargs)
    except (NoSuchMethod, UnsupportedVersion) as exc:
        what = "method" if isinstance(exc, NoSuchMethod) else "version of"
        msg = (f"{_where(args)} has no {what} {method!r} (namespace "
               f"{getattr(args, 'namespace', None)!r}, version {getattr(args, 'version', None)!r})"
               ": check the method name, --namespace and --version")
        where = first_line(exc).partition("; ")[2]  # the server's "exists in ..." hint
        raise BadInput(f"{msg} ({where})" if where else msg) from None
    except MessagingTimeout:
        msg = (f"no reply from {_where(args)} within {args.timeout:g} s: is a server of that "
               f"topic running? (--timeout waits longer)")
        raise Failed(msg) from None
    except MessageUndeliverable:
        raise _no_server(args) from None
    except MessageDeliveryFailure:
        raise
    except MessagingException as exc:
        if isinstance(exc, RemoteError):
            raise _remote_failure(exc.exc_type, exc.value, args) from None
        raise
    except Exception as exc:  # noqa: BLE001 - a remote exception, rebuilt as its own class
        name = type(exc).__name__.removesuffix("_Remote")
        raise _remote_failure(name, first_line(exc), args) from None


class _RemoteFailure(Failed):
    def __init__(self, exc_type: str, message: str, where: str) -> None:
        super().__init__(f"{where} raised {exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


def _remote_failure(exc_type: str | None, value: Any, args: argparse.Namespace) -> Failed:
    text = str(value or "").strip().splitlines()
    failure = _RemoteFailure(exc_type or "RemoteError", text[0] if text else "", _where(args))
    if args.json:
        print(to_json({"error": {"type": failure.exc_type, "message": failure.message}}))
    return failure


def call(args: argparse.Namespace) -> int:
    """``dovecote call``: print the result, or the remote error (exit 1)."""
    kwargs, ctxt = json_object("--args", args.args), json_object("--ctxt", args.ctxt)
    with open_transport(args.url) as transport:
        _exists(transport, args)
        client = _client(transport, args, namespace=args.namespace, version=args.version)
        result = _remote_call(client, ctxt, args.method, args, **kwargs)
    if args.json:
        print(to_json(result))
    else:
        for line in to_json(result, indent=2).split("\n"):
            show(line)
    return 0


def cast(args: argparse.Namespace) -> int:
    """``dovecote cast``: send without waiting for an answer."""
    kwargs, ctxt = json_object("--args", args.args), json_object("--ctxt", args.ctxt)
    with open_transport(args.url) as transport:
        if not args.fanout:
            _exists(transport, args)
        client = _client(transport, args, namespace=args.namespace, version=args.version,
                         fanout=args.fanout)
        try:
            client.cast(ctxt, args.method, **kwargs)
        except MessageUndeliverable:
            raise _no_server(args) from None
    if args.json:
        print(to_json({"sent": True, "topic": args.topic, "server": args.server,
                       "method": args.method, "fanout": args.fanout}))
    else:
        show(f"cast {args.method} to {_where(args)}{' (fanout)' if args.fanout else ''}")
    return 0


def ping(args: argparse.Namespace) -> int:
    """``dovecote ping``: round-trip times of the control endpoint's ``ping``
    (oslo.messaging's ``oslo_rpc_server_ping`` for a server without it)."""
    times: list[float] = []
    with open_transport(args.url) as transport:
        _exists(transport, args)
        control = _client(transport, args, namespace=CONTROL_NAMESPACE, version="1.0")
        oslo = _client(transport, args)
        method = "ping"
        for _ in range(args.count):
            began = time.perf_counter()
            try:
                _remote_call(control if method == "ping" else oslo, {}, method, args)
            except BadInput:  # not a dovecote server: try oslo.messaging's ping
                if method != "ping":
                    raise
                method = "oslo_rpc_server_ping"
                began = time.perf_counter()
                _remote_call(oslo, {}, method, args)
            times.append((time.perf_counter() - began) * 1000)
            if not args.json:
                show(f"pong from {_where(args)}: {times[-1]:.2f} ms")
    summary = {"target": _where(args), "rtt_ms": [round(t, 3) for t in times],
               "min_ms": round(min(times), 3), "avg_ms": round(sum(times) / len(times), 3),
               "max_ms": round(max(times), 3)}
    if args.json:
        print(to_json(summary))
    else:
        show(f"{len(times)} pong(s): min {summary['min_ms']:.2f} / avg "
             f"{summary['avg_ms']:.2f} / max {summary['max_ms']:.2f} ms")
    return 0


def _control(transport: Transport, args: argparse.Namespace, method: str,
             **kwargs: Any) -> Any:
    client = _client(transport, args, namespace=CONTROL_NAMESPACE, version="1.0")
    try:
        return _remote_call(client, {}, method, args, **kwargs)
    except BadInput:
        msg = (f"{_where(args)} does not serve the control endpoint: start it with "
               f"get_rpc_server(..., control=True) or `dovecote serve`")
        raise BadInput(msg) from None


_ACTOR_COLUMNS = ["kind", "actor", "target", "alive", "mailbox", "handled", "failed", "urn"]


def actors(args: argparse.Namespace) -> int:
    """``dovecote actors``: a remote server's actors, as a table."""
    with open_transport(args.url) as transport:
        _exists(transport, args)
        records = _control(transport, args, "actors")
    if args.json:
        print(to_json(records))
    else:
        for line in table(records, _ACTOR_COLUMNS):
            show(line)
    return 0


def events(args: argparse.Namespace) -> int:
    """``dovecote events``: a remote server's recent events (``--follow``: and
    new ones, until Ctrl+C)."""
    since: float | None = None  # the server's clock: the last event's time
    answered = False
    with open_transport(args.url) as transport:
        _exists(transport, args)
        try:
            while True:
                try:
                    # --limit is the backlog shown first; then every new event.
                    found = _control(transport, args, "events", actor=args.actor,
                                     kind=args.kind, msg_id=args.msg_id, since=since,
                                     limit=MAX_EVENTS if answered else args.limit)
                except (Failed, MessageDeliveryFailure) as exc:
                    if not args.follow or not answered:
                        raise
                    # Following: the server or the broker may come back.
                    err(f"{first_line(exc)} (retrying; Ctrl+C stops)")
                    found = []
                else:
                    answered = True
                for event in found:
                    if args.json:
                        print(to_json(event), flush=True)
                    else:
                        show(event_line(event))
                if found:
                    since = max(float(e.get("time", 0)) for e in found)
                if not args.follow:
                    return 0
                time.sleep(1.0)
        except KeyboardInterrupt:
            return 0
