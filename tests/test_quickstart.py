"""The quickstart (``examples/quickstart.py``, copied into the README) runs on
``memory://`` as printed, and quietly: with logging unconfigured, nothing but its own
lines on stdout and nothing on stderr. What it prints is what the documentation's
quickstart page shows, but for the message id, the times and the counts."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT

PAGE = ROOT / "docs" / "getting-started" / "quickstart.md"

#: What differs from run to run: the message id, the trace's times, the counts.
VARYING = [
    (re.compile(r"\([0-9a-f]{8}\.\.\.\)"), "(<msg_id>...)"),
    (re.compile(r"\+ *\d+\.\d+ ms"), "+<t> ms"),
    (re.compile(r"handled=\d+"), "handled=<n>"),
]


def normalized(lines: list[str]) -> list[str]:
    for pattern, replacement in VARYING:
        lines = [pattern.sub(replacement, line) for line in lines]
    return lines


@pytest.fixture(scope="module")
def output() -> list[str]:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_the_quickstart_runs_quietly(output: list[str]) -> None:
    lines = output
    assert lines[0] == "resize -> {'instance': 'i-1', 'flavor': 'm1.small', 'by': 'alice'}"
    assert "actor endpoint -> 5 7" in lines
    assert "remote ValueError -> this instance cannot be resized" in lines
    trace = [line.split()[-1] for line in lines if line.startswith("  +")]
    assert trace == ["message.received", "message.queued", "dispatch.started", "reply.sent",
                     "dispatch.ok"]
    assert lines[-1] == "done"


def test_the_quickstart_page_shows_what_it_prints(output: list[str]) -> None:
    """The first ``text`` block under "## Run it" on the quickstart page."""
    page = PAGE.read_text(encoding="utf-8")
    run_it = page[page.index("## Run it"):]
    shown = re.search(r"^```text\n(.*?)^```", run_it, re.DOTALL | re.MULTILINE)
    assert shown is not None, f"{PAGE.relative_to(ROOT)} shows no output under '## Run it'"
    assert normalized(shown[1].splitlines()) == normalized(output), (
        f"{PAGE.relative_to(ROOT)} no longer shows what examples/quickstart.py prints")
