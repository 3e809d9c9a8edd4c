"""What a server logs, on every transport, read with structlog's testing helper:
the identity each actor binds, the per-message fields, the event names, no
password anywhere, and no logging configuration done by the library."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
import structlog
from _rpc_support import PATIENCE, running, serve

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("forget_queues")]


class Api:
    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def fail(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("it failed")


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def run_traffic(transport: dovecote.Transport, topic: str, executor: str) -> tuple[
    list[dict[str, Any]], list[str]
]:
    """Start a server, make one good call, one failing call and one to a
    missing method, stop; return the log entries and the call ids."""
    with structlog.testing.capture_logs() as logs:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                         executor=executor, name="logsrv")
        with running(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            assert client.call({}, "echo", value=1) == 1
            with pytest.raises(ValueError, match="it failed"):
                client.call({}, "fail")
            with pytest.raises(dovecote.NoSuchMethod):
                client.call({}, "missing")
    ids = [e["msg_id"] for e in logs if e["event"].startswith("dispatch.")]
    return logs, ids


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_actor_identity_is_bound_on_every_actor_line(
    transport: dovecote.Transport, topic: str, executor: str
) -> None:
    logs, _ = run_traffic(transport, topic, executor)
    (started,) = events(logs, "listener.started")
    assert started["actor"] == "ListenerActor"
    assert started["actor_urn"].startswith("urn:uuid:")
    assert started["server"] == "logsrv"
    assert started["listener"] == str(Target(topic=topic, server="s1"))
    assert started["transport"] == str(transport.url)
    received = events(logs, "message.received")
    assert received
    for entry in received:
        assert entry["actor"] == "ListenerActor"
        assert entry["actor_urn"] == started["actor_urn"]
        assert entry["listener"] == started["listener"]
        assert entry["transport"] == started["transport"]
    expected_actor = "WorkerActor" if executor == "threading" else "DispatcherActor"
    for name in ("dispatch.ok", "dispatch.failed", "reply.sent"):
        found = events(logs, name)
        assert found, name
        for entry in found:
            assert entry["server"] == "logsrv", entry
            assert entry.get("actor") in {expected_actor, "DispatcherActor"}, entry
            assert str(entry.get("actor_urn", "")).startswith("urn:uuid:"), entry


def test_per_message_fields_and_outcomes(transport: dovecote.Transport, topic: str) -> None:
    logs, ids = run_traffic(transport, topic, "threading")
    (ok,) = events(logs, "dispatch.ok")
    assert ok["method"] == "echo"
    assert ok["outcome"] == "ok"
    assert isinstance(ok["duration_ms"], float)
    assert ok["duration_ms"] >= 0
    assert len(ok["msg_id"]) == 32
    failed = {e["method"]: e for e in events(logs, "dispatch.failed")}
    assert set(failed) == {"fail", "missing"}
    assert failed["fail"]["outcome"] == "error"
    assert "it failed" in failed["fail"]["error"]
    assert failed["fail"]["log_level"] == "error"
    assert failed["missing"]["outcome"] == "rejected"
    assert "missing" in failed["missing"]["error"]
    for entry in [ok, *failed.values()]:
        assert isinstance(entry["duration_ms"], float)
        # which listener took the message, and over which transport (password masked)
        assert entry["listener"] == str(Target(topic=topic, server="s1")), entry
        assert entry["transport"] == str(transport.url), entry
    # one reply per call, each naming the call's id
    sent = [e["msg_id"] for e in events(logs, "reply.sent")]
    assert ok["msg_id"] in sent
    assert len(set(ids)) == 3


def test_notification_lines_name_actor_listener_and_transport(
    transport: dovecote.Transport, topic: str
) -> None:
    class Meter:
        def __init__(self) -> None:
            self.seen = threading.Event()

        def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
                 payload: Any, metadata: dict[str, Any]) -> None:
            self.seen.set()

    meter = Meter()
    listener = dovecote.get_notification_listener(transport, [Target(topic=topic)], [meter])
    # leaving running() stops and waits for the listener: its lines are all written
    with structlog.testing.capture_logs() as logs, running(listener):
        dovecote.Notifier(transport, publisher_id="pub", topics=[topic]).info({}, "a.b", {})
        assert meter.seen.wait(PATIENCE)
    (ok,) = events(logs, "dispatch.ok")
    assert ok["event_type"] == "a.b"
    assert ok["publisher_id"] == "pub"
    assert ok["outcome"] == "handled"
    assert ok["actor"] in {"WorkerActor", "DispatcherActor"}
    assert ok["actor_urn"].startswith("urn:uuid:")
    assert ok["listener"].startswith("<Notifications")
    assert ok["transport"] == str(transport.url)
    assert isinstance(ok["duration_ms"], float)


def test_expected_exceptions_are_logged_briefly(
    transport: dovecote.Transport, topic: str
) -> None:
    class Careful:
        @dovecote.expected_exceptions(KeyError)
        def lookup(self, ctxt: dict[str, Any]) -> None:
            raise KeyError("absent")

    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Careful()]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        with pytest.raises(KeyError):
            client.call({}, "lookup")
    (entry,) = events(logs, "dispatch.failed")
    assert entry["outcome"] == "expected_error"
    assert entry["log_level"] == "info"
    assert "exc_info" not in entry


def test_server_lifecycle_events(transport: dovecote.Transport, topic: str) -> None:
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        pass
    names = [e["event"] for e in logs]
    for name in ("listener.started", "server.started", "server.stopping", "listener.paused",
                 "server.stopped", "listener.stopped"):
        assert name in names, names
    assert names.index("server.stopping") < names.index("server.stopped")


def test_no_password_in_any_log_line(unique: str, topic: str) -> None:
    """A memory URL may carry credentials too: a secret the broker does not
    check, so the test can pick one that appears nowhere else."""
    secret = "Sup3rS3cret"
    transport = dovecote.get_transport(f"memory://admin:{secret}@{unique}")
    try:
        with structlog.testing.capture_logs() as logs, \
                serve(transport, Target(topic=topic, server="s1"), [Api()]) as server:
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            assert client.call({}, "echo", value=1) == 1
            records = server.actors()
        assert logs
        assert secret not in repr(logs)
        assert secret not in repr(records)
        assert secret not in repr(transport) + repr(transport.url) + str(transport.url)
        (started,) = events(logs, "listener.started")
        assert started["transport"] == f"memory://admin:****@{unique}"
    finally:
        transport.cleanup()


def test_broker_password_is_masked(transport: dovecote.Transport, topic: str) -> None:
    password = transport.url.hosts[0].password if transport.url.hosts else None
    with structlog.testing.capture_logs() as logs, \
            serve(transport, Target(topic=topic, server="s1"), [Api()]):
        pass
    if password:
        for entry in logs:
            for key in ("transport", "listener"):
                if key in entry:
                    assert f":{password}@" not in str(entry[key]), entry
        (started,) = events(logs, "listener.started")
        assert ":****@" in started["transport"]


def test_the_library_never_configures_logging() -> None:
    """Importing dovecote and running a server leaves structlog's and the
    standard library's configuration as they were (checked in a fresh interpreter)."""
    code = """
import logging, structlog
before = (structlog.get_config(), structlog.is_configured(), logging.getLogger().handlers[:],
          logging.getLogger().level)
import dovecote
t = dovecote.get_transport("memory://cfg")
s = dovecote.get_rpc_server(t, dovecote.Target(topic="t", server="s"), [])
s.start(); s.stop(); assert s.wait(5)
after = (structlog.get_config(), structlog.is_configured(), logging.getLogger().handlers[:],
         logging.getLogger().level)
assert before == after, (before, after)
assert not structlog.is_configured()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_configure_logging_writes_json_lines(tmp_path: Any) -> None:
    """The opt-in helper, in a fresh interpreter so this process keeps its set-up."""
    path = tmp_path / "log.jsonl"
    code = f"""
import dovecote, json
dovecote.configure_logging(level="info", path={str(path)!r})
t = dovecote.get_transport("memory://cfg2")
s = dovecote.get_rpc_server(t, dovecote.Target(topic="t", server="s"), [])
s.start(); s.stop(); assert s.wait(5)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    import json

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert any(line["event"] == "listener.started" for line in lines)
    assert all({"timestamp", "level", "event"} <= set(line) for line in lines)
    assert not any(line["level"] == "debug" for line in lines)
    with pytest.raises(ValueError, match="log level"):
        dovecote.configure_logging(level="chatty")
