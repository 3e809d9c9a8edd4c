"""The ``dovecote`` command."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import structlog

import dovecote
from dovecote._cli import main


def test_url_names_the_driver_and_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["url", "rabbit://user:s3cret@h1:5672,user:s3cret@h2/vhost?heartbeat=5"]) == 0
    out = capsys.readouterr().out
    parsed = json.loads(out)
    assert parsed["driver"] == "dovecote.drivers.kombu.KombuDriver"
    assert parsed["hosts"] == ["user:****@h1:5672", "user:****@h2"]
    assert parsed["virtual_host"] == "vhost"
    assert parsed["options"] == {"heartbeat": "5"}
    assert "s3cret" not in out


def test_a_bad_url_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["url", "nosuch://user:s3cret@h/"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err
    assert "s3cret" not in err


class Failing:
    def __init__(self) -> None:
        self.fail = True
        self.handled = threading.Event()
        self.parked = threading.Event()

    def error(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, Any]) -> None:
        if self.fail:
            self.parked.set()
            raise RuntimeError("broken endpoint")
        self.handled.set()


def test_dead_letters_take_and_replay(unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    with structlog.testing.capture_logs():  # keeps the library's log lines out of stdout
        _take_and_replay(f"memory://cli-{unique}", capsys)


def _take_and_replay(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    transport = dovecote.get_transport(url)
    endpoint = Failing()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic="notifications")], [endpoint])
    listener.start()
    try:
        notifier = dovecote.Notifier(transport, publisher_id="p")
        notifier.error({}, "x.failed", {"n": 1})
        notifier.error({}, "x.failed", {"n": 2})
        assert endpoint.parked.wait(5)
        listener.stop()
        assert listener.wait(5)
        assert main(["dead-letters", "take", url, "notifications", "error", "--limit", "1",
                     "--timeout", "0.2"]) == 0
        taken = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(taken) == 1
        assert "broken endpoint" in taken[0]["reason"]
        assert taken[0]["message"]["event_type"] == "x.failed"
        endpoint.fail = False
        listener.start()
        assert main(["dead-letters", "replay", url, "notifications", "error",
                     "--timeout", "0.2"]) == 0
        assert "replayed 1 notification(s)" in capsys.readouterr().out
        assert endpoint.handled.wait(5)
    finally:
        listener.stop()
        listener.wait(5)
        transport.cleanup()
