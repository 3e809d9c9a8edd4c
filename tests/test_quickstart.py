"""The README's quickstart runs on ``memory://`` as printed, and quietly: with
structlog unconfigured, nothing but its own lines on stdout and nothing on stderr."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_quickstart_runs_quietly() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "resize -> {'instance': 'i-1', 'flavor': 'm1.small', 'by': 'alice'}"
    assert "actor endpoint -> 5 7" in lines
    assert "remote ValueError -> this instance cannot be resized" in lines
    trace = [line.split()[-1] for line in lines if line.startswith("  +")]
    assert trace == ["message.received", "message.queued", "dispatch.started", "reply.sent",
                     "dispatch.ok"]
    assert lines[-1] == "done"
