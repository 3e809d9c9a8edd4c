"""The documented table of log events is checked against the code.

``docs/_ext/event_scan.py`` finds every event dovecote logs by reading ``lib/``
and ``actors/`` with :mod:`ast` (the log calls whose first argument is a literal
event name), with its levels and its logger; ``docs/_ext/events.toml`` describes
each one. They must agree: every event logged is described, nothing described
is not logged, each entry's levels are exactly the levels the code logs it at,
and no event name is built at run time. The docs build fails on the same
mismatches (``dovecote_events``); this test says so before any build.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import event_scan  # noqa: E402  (docs/_ext is not a package)


def test_the_scan_finds_the_events_it_must() -> None:
    """The scan itself: events logged through every kind of call are found,
    with their levels and loggers."""
    events, built = event_scan.scan()
    assert events["server.interrupted"].levels == {"warning"}  # a module logger
    assert "debug" in events["message.received"].levels  # ActorLog.debug_fields
    assert "debug" in events["dispatch.started"].levels  # ActorLog.debug_values
    assert {"warning", "error", "info"} <= events["dispatch.failed"].levels
    assert "notification.requeue_failed" in events
    assert len(events) >= 60
    assert not built
    assert events["server.interrupted"].loggers == {"dovecote.actors.server"}
    assert events["message.received"].loggers == {"dovecote.actors"}  # an actor's own log
    assert events["dispatch.failed"].loggers == {"dovecote.rpc.server", "dovecote.notify.handler"}
    assert events["sender.reconnecting"].loggers == {"dovecote.drivers.amqp1"}


def test_the_events_table_matches_the_code() -> None:
    problems = event_scan.mismatches()
    assert not problems, "\n".join(problems)


def test_the_mismatches_are_found() -> None:
    """A drift in either direction, or in levels, is reported."""
    events, _ = event_scan.scan()
    described = dict(event_scan.descriptions())
    gone = described.pop("server.started")
    described["server.exploded"] = {"levels": ["error"], "meaning": "never logged"}
    described["listener.started"] = {**described["listener.started"], "levels": ["debug"]}
    problems = "\n".join(event_scan.mismatches(events, described))
    assert "logged but not in events.toml: server.started" in problems
    assert "in events.toml but never logged: server.exploded" in problems
    assert "listener.started is logged at info; events.toml says debug" in problems
    assert gone["levels"] == ["info"]


_LOGGED_BY = """
import json, logging
import dovecote

seen = {}

class Keep(logging.Handler):
    def emit(self, record):
        seen.setdefault(record.event, set()).add(record.name)

class Adder:
    def add(self, ctxt, a, b):
        return a + b

top = logging.getLogger("dovecote")
top.addHandler(Keep())
top.setLevel(logging.DEBUG)
transport = dovecote.get_transport("memory://logger-names")
server = dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="s"), [Adder()])
server.start()
try:
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="t"), timeout=10)
    assert client.call({}, "add", a=1, b=2) == 3
finally:
    server.stop()
    server.wait(timeout=10)
    transport.cleanup()
print(json.dumps({event: sorted(names) for event, names in seen.items()}))
"""


def test_the_loggers_found_are_those_the_records_come_from() -> None:
    """What a server on ``memory://`` logs reaches ``logging`` under the
    logger the scan names for each event (in a fresh interpreter: logging and
    structlog as a user who configured nothing has them)."""
    events, _ = event_scan.scan()
    done = subprocess.run([sys.executable, "-c", _LOGGED_BY], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen: dict[str, list[str]] = json.loads(done.stdout)
    assert {"server.started", "message.received", "dispatch.ok", "reply.sent",
            "listener.stopped"} <= set(seen)
    for event, loggers in seen.items():
        assert set(loggers) <= events[event].loggers, (event, loggers, events[event].loggers)
