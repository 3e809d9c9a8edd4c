"""The ``dovecote`` subcommands that ask one server's control endpoint:
``ping``, ``actors``, ``events`` and ``describe``, each saying which server
answered.

``ping`` asks ``ping(who=True)`` (control endpoint 1.1), which names the
server; a 1.0 server gets a plain ``ping``, an oslo.messaging server
``oslo_rpc_server_ping``, and the line says the server is unknown. Without
``--server``, ``actors`` and ``events`` first ask the topic which server
answers and then address that one, so ``events --follow`` reads one server's
history, not a mix of several."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .._errors import MessageDeliveryFailure
from .._transport import Transport
from ..observe._control import CONTROL_NAMESPACE, CONTROL_VERSION, MAX_EVENTS
from ._connect import open_transport
from ._rpc import client, exists, remote_call, where
from ._support import BadInput, Failed, err, event_line, first_line, show, table, to_json

__all__ = ["actors", "describe", "events", "ping"]


def _control(transport: Transport, args: argparse.Namespace, method: str, *,
             version: str = "1.0", **kwargs: Any) -> Any:
    """Call the control endpoint's ``method`` (at ``version``)."""
    control = client(transport, args, namespace=CONTROL_NAMESPACE, version=version)
    try:
        return remote_call(control, {}, method, args, **kwargs)
    except BadInput:
        since = "" if version == "1.0" else f" {version} (dovecote's {method!r} is newer)"
        msg = (f"{where(args)} does not serve the control endpoint{since}: start it with "
               f"get_rpc_server(..., control=True) or `dovecote serve`")
        raise BadInput(msg) from None


def _who(answer: Any) -> dict[str, Any] | None:
    """The identity in a ``ping(who=True)``/``info``/``describe`` answer."""
    if isinstance(answer, dict) and isinstance(answer.get("server"), str):
        return answer
    return None


def _named(args: argparse.Namespace, who: dict[str, Any] | None) -> str:
    """``topic.server (host H, pid P)``: who answered, as far as known."""
    if who is None:
        return f"{where(args)} (server unknown: it predates dovecote.control {CONTROL_VERSION})" \
            if args.server is None else where(args)
    return f"{args.topic}.{who['server']} (host {who.get('host')}, pid {who.get('pid')})"


def _pick(transport: Transport, args: argparse.Namespace) -> dict[str, Any] | None:
    """Without ``--server``: ask the topic who answers and address that server
    from now on (``args.server``); ``None`` for a server too old to say."""
    if args.server is not None:
        return None
    try:
        who = _who(_control(transport, args, "ping", version=CONTROL_VERSION, who=True))
    except BadInput:
        return None
    if who is not None:
        args.server = who["server"]
    return who


class _Pinger:
    """One round trip per :meth:`once`: ``ping(who=True)``, else (a 1.0
    server) ``ping``, else (not dovecote) ``oslo_rpc_server_ping``."""

    def __init__(self, transport: Transport, args: argparse.Namespace) -> None:
        self.args = args
        self.tries = [
            ("ping", client(transport, args, namespace=CONTROL_NAMESPACE,
                            version=CONTROL_VERSION), {"who": True}),
            ("ping", client(transport, args, namespace=CONTROL_NAMESPACE, version="1.0"), {}),
            ("oslo_rpc_server_ping", client(transport, args), {}),
        ]

    def once(self) -> tuple[float, dict[str, Any] | None]:
        """Milliseconds of one round trip, and who answered."""
        while True:
            method, rpc, kwargs = self.tries[0]
            began = time.perf_counter()
            try:
                answer = remote_call(rpc, {}, method, self.args, **kwargs)
            except BadInput:
                if len(self.tries) == 1:
                    raise
                self.tries.pop(0)
                continue
            return (time.perf_counter() - began) * 1000, _who(answer)


def ping(args: argparse.Namespace) -> int:
    """``dovecote ping``: round-trip times, each with the server that answered."""
    times: list[float] = []
    answered: list[dict[str, Any] | None] = []
    with open_transport(args) as transport:
        exists(transport, args)
        pinger = _Pinger(transport, args)
        for _ in range(args.count):
            rtt, who = pinger.once()
            times.append(rtt)
            answered.append(who)
            if not args.json:
                show(f"pong from {_named(args, who)}: {rtt:.2f} ms")
    summary = {"target": where(args), "rtt_ms": [round(t, 3) for t in times],
               "servers": [None if w is None else w["server"] for w in answered],
               "hosts": [None if w is None else w.get("host") for w in answered],
               "pids": [None if w is None else w.get("pid") for w in answered],
               "min_ms": round(min(times), 3), "avg_ms": round(sum(times) / len(times), 3),
               "max_ms": round(max(times), 3)}
    if args.json:
        print(to_json(summary))
    else:
        show(f"{len(times)} pong(s): min {summary['min_ms']:.2f} / avg "
             f"{summary['avg_ms']:.2f} / max {summary['max_ms']:.2f} ms")
    return 0


_ACTOR_COLUMNS = ["kind", "actor", "target", "alive", "mailbox", "handled", "failed", "urn"]


def actors(args: argparse.Namespace) -> int:
    """``dovecote actors``: a server's actors, as a table under a line naming
    the server (``--json``: the records, each with its ``server``)."""
    with open_transport(args) as transport:
        exists(transport, args)
        who = _pick(transport, args)
        records = _control(transport, args, "actors")
    if args.json:
        print(to_json(records))
        return 0
    if args.server is None and records and isinstance(records[0], dict) \
            and isinstance(records[0].get("server"), str):
        args.server = records[0]["server"]
    show(f"actors of {_named(args, who)}:")
    for line in table(records, _ACTOR_COLUMNS):
        show(line)
    return 0


def events(args: argparse.Namespace) -> int:
    """``dovecote events``: a server's recent events under a line naming the
    server (``--follow``: and new ones, until Ctrl+C)."""
    since: float | None = None  # the server's clock: the last event's time
    answered = False
    with open_transport(args) as transport:
        exists(transport, args)
        who = _pick(transport, args)
        if not args.json:
            show(f"events of {_named(args, who)}:")
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


def parameters_text(parameters: Any) -> str:
    """A method's parameters as a caller writes them: ``(instance, flavor=...,
    **extra)``; ``(?)`` when the server could not read them."""
    if not isinstance(parameters, list):
        return "(?)"
    shown = []
    for param in _dicts(parameters):
        name = str(param.get("name"))
        if param.get("any"):
            shown.append(f"**{name}")
        else:
            shown.append(name if param.get("required") else f"{name}=...")
    return f"({', '.join(shown)})"


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` if it is a list (a peer may send anything)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def describe_lines(answer: dict[str, Any]) -> list[str]:
    """What ``describe`` prints for humans: each endpoint, then its methods."""
    lines = []
    for endpoint in _dicts(answer.get("endpoints")):
        legacy = endpoint.get("legacy_namespaces")
        also = f" (also {', '.join(map(repr, legacy))})" if isinstance(legacy, list) \
            and legacy else ""
        kind = " (actor)" if endpoint.get("actor") is True else ""
        lines.append(f"{endpoint.get('endpoint')}{kind}: namespace "
                     f"{endpoint.get('namespace')!r}{also}, version {endpoint.get('version')}")
        methods = _dicts(endpoint.get("methods"))
        calls = [f"{m.get('name')}{parameters_text(m.get('parameters'))}" for m in methods]
        width = max([len(c) for c in calls] + [0])
        for text, method in zip(calls, methods, strict=True):
            summary = method.get("summary")
            lines.append(f"  {text:<{width}}  {summary}".rstrip() if summary else f"  {text}")
        if not methods:
            lines.append("  (no method callers may call)")
    return lines


def describe(args: argparse.Namespace) -> int:
    """``dovecote describe``: the endpoints a server serves, with namespace,
    version and each method's parameters (never argument values)."""
    with open_transport(args) as transport:
        exists(transport, args)
        answer = _control(transport, args, "describe", version=CONTROL_VERSION)
    if not isinstance(answer, dict):
        msg = f"{where(args)} answered describe with {type(answer).__name__}, not an object"
        raise Failed(msg)
    if args.json:
        print(to_json(answer))
        return 0
    show(f"{_named(args, _who(answer))} serves:")
    for line in describe_lines(answer) or ["  no endpoint of its own (only the control endpoint)"]:
        show(line)
    return 0
