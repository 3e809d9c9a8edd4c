"""Quiet by default: an application that configured neither ``logging`` nor
structlog gets nothing on stdout from dovecote, and on stderr only WARNING and
above (Python's last-resort handler); its actors still keep their event history."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

APPLICATION = textwrap.dedent("""
    import json, sys, threading
    import structlog
    import dovecote
    from dovecote import Target

    class Api:
        def __init__(self):
            self.seen = threading.Event()
        def echo(self, ctxt, value):
            return value
        def tick(self, ctxt):
            pass
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            self.seen.set()
        def fail(self, ctxt):
            raise ValueError("it failed")

    transport = dovecote.get_transport("memory://quiet")
    api = Api()
    server = dovecote.get_rpc_server(transport, Target(topic="t", server="s"), [api])
    listener = dovecote.get_notification_listener(transport, [Target(topic="n")], [api])
    server.start(); listener.start()
    client = dovecote.get_rpc_client(transport, Target(topic="t"), timeout=5)
    for i in range(50):
        assert client.call({}, "echo", value=i) == i
        client.cast({}, "tick")
    dovecote.Notifier(transport, publisher_id="p", topics=["n"]).info({}, "e", {})
    assert api.seen.wait(5)
    if sys.argv[1] == "fail":
        try:
            client.call({}, "fail")
        except ValueError:
            pass
    assert not structlog.is_configured()
    events = len(server.events())
    server.stop(); listener.stop()
    assert server.wait(5) and listener.wait(5)
    transport.cleanup()
    sys.stderr.write(json.dumps({"history": events}) + "\\n")
""")


def run_application(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", APPLICATION, mode], capture_output=True,
                          text=True, timeout=50, check=True)


def test_an_unconfigured_application_gets_nothing_below_warning() -> None:
    done = run_application("ok")
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # only the application's own line
    assert json.loads(lines[0])["history"] > 100  # the history is kept all the same


def test_warnings_and_errors_go_to_stderr_not_stdout() -> None:
    done = run_application("fail")
    assert done.stdout == ""
    logged = done.stderr.splitlines()[:-1]
    # Python's last-resort handler: the message alone, then the endpoint's traceback
    assert logged[0].startswith("dispatch.failed "), done.stderr
    assert "outcome=error" in logged[0]
    assert "method=fail" in logged[0]
    assert logged[1] == "Traceback (most recent call last):", done.stderr
    assert all(line.startswith("  ") for line in logged[2:-1]), done.stderr  # nothing else
    assert logged[-1] == "ValueError: it failed", done.stderr
