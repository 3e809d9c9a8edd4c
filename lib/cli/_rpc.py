"""The ``dovecote`` subcommands that call or cast to a server (``call``,
``cast``), and what the inspecting ones share with them: the client, the
look for a target's queue, and how remote failures are sorted.

Messages go out mandatory (``at_least_once``) and, where the transport can
tell, after a look for the target's queue: a topic or server that does not
exist is "no server of topic X" at once (exit status 1), not a wait for the
whole timeout. ``amqp1://`` cannot return an unroutable message, so there
the look alone tells (``addressing=rabbitmq``); where neither can, the
command waits for its timeout as before. ``cast --allow-unroutable`` skips
both and sends anyway."""

from __future__ import annotations

import argparse
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
from ..rpc._client import get_rpc_client
from ._connect import open_transport
from ._support import BadInput, Failed, first_line, json_object, show, to_json

__all__ = ["call", "cast", "client", "exists", "no_server", "remote_call", "where"]


def client(transport: Transport, args: argparse.Namespace, *, namespace: str | None = None,
           version: str | None = None, fanout: bool = False, mandatory: bool = True) -> Any:
    """A client for the command's target: mandatory unless it is a fanout or
    ``mandatory`` is false."""
    target = Target(topic=args.topic, server=args.server, namespace=namespace,
                    version=version, fanout=fanout)
    wanted = mandatory and not fanout
    return get_rpc_client(transport, target, timeout=args.timeout, retry=0,
                          transport_options={"at_least_once": True} if wanted else None)


def where(args: argparse.Namespace) -> str:
    """``topic.server`` or ``topic``: what the command addresses."""
    return f"{args.topic}.{args.server}" if args.server else str(args.topic)


def no_server(args: argparse.Namespace, *, server: bool = True) -> Failed:
    """The failure for a target nothing receives."""
    name = f" {args.server}" if args.server and server else ""
    return Failed(f"no server{name} of topic {args.topic}: nothing receives its messages "
                  "(check the topic and --server, or start the server)")


def exists(transport: Transport, args: argparse.Namespace, *, server: bool = True) -> None:
    """Fail at once when the target's queue (``<topic>`` or, with ``server``,
    ``<topic>.<server>``, which every server of it declares) does not exist,
    where the transport can tell: the check for a transport that cannot
    return unroutable messages."""
    queue = where(args) if server else str(args.topic)
    info = transport.driver.queue_info(queue)
    if info is not None and not info[0]:
        raise no_server(args, server=server)


def remote_call(client: Any, ctxt: dict[str, Any], method: str, args: argparse.Namespace,
                **kwargs: Any) -> Any:
    """``client.call`` with its failures sorted: unknown method or version is
    bad input, no reply or a remote error is a failure."""
    try:
        return client.call(ctxt, method, **kwargs)
    except (NoSuchMethod, UnsupportedVersion) as exc:
        what = "method" if isinstance(exc, NoSuchMethod) else "version of"
        msg = (f"{where(args)} has no {what} {method!r} (namespace "
               f"{client.target.namespace!r}, version {client.target.version!r})"
               ": check the method name, --namespace and --version")
        hint = first_line(exc).partition("; ")[2]  # the server's "exists in ..." hint
        raise BadInput(f"{msg} ({hint})" if hint else msg) from None
    except MessagingTimeout:
        msg = (f"no reply from {where(args)} within {args.timeout:g} s: is a server of that "
               f"topic running? (--timeout waits longer)")
        raise Failed(msg) from None
    except MessageUndeliverable:
        raise no_server(args) from None
    except MessageDeliveryFailure:
        raise
    except MessagingException as exc:
        if isinstance(exc, RemoteError):
            raise _remote_failure(exc.exc_type, exc.value, args) from None
        raise
    except Exception as exc:  # noqa: BLE001 - a remote exception, rebuilt as its own class
        name = type(exc).__name__.removesuffix("_Remote")
        raise _remote_failure(name, first_line(exc), args) from None


class RemoteFailure(Failed):
    """The remote method raised ``exc_type``."""

    def __init__(self, exc_type: str, message: str, where: str) -> None:
        super().__init__(f"{where} raised {exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


def _remote_failure(exc_type: str | None, value: Any, args: argparse.Namespace) -> Failed:
    text = str(value or "").strip().splitlines()
    return RemoteFailure(exc_type or "RemoteError", text[0] if text else "", where(args))


def call(args: argparse.Namespace) -> int:
    """``dovecote call``: print the result, or the remote error (exit 1)."""
    kwargs, ctxt = json_object("--args", args.args), json_object("--ctxt", args.ctxt)
    with open_transport(args) as transport:
        exists(transport, args)
        rpc = client(transport, args, namespace=args.namespace, version=args.version)
        try:
            result = remote_call(rpc, ctxt, args.method, args, **kwargs)
        except RemoteFailure as exc:
            if args.json:
                print(to_json({"error": {"type": exc.exc_type, "message": exc.message}}))
            raise
    if args.json:
        print(to_json(result))
    else:
        for line in to_json(result, indent=2).split("\n"):
            show(line)
    return 0


def cast(args: argparse.Namespace) -> int:
    """``dovecote cast``: send without waiting for an answer; to a topic (or
    server) with no queue, "no server" (exit 1) unless ``--allow-unroutable``."""
    kwargs, ctxt = json_object("--args", args.args), json_object("--ctxt", args.ctxt)
    with open_transport(args) as transport:
        if not args.allow_unroutable:
            exists(transport, args, server=not args.fanout)
        rpc = client(transport, args, namespace=args.namespace, version=args.version,
                     fanout=args.fanout, mandatory=not args.allow_unroutable)
        try:
            rpc.cast(ctxt, args.method, **kwargs)
        except MessageUndeliverable:
            raise no_server(args) from None
    if args.json:
        print(to_json({"sent": True, "topic": args.topic, "server": args.server,
                       "method": args.method, "fanout": args.fanout}))
    else:
        show(f"cast {args.method} to {where(args)}{' (fanout)' if args.fanout else ''}")
    return 0
