"""oslo.messaging's own functional tests (call, cast, notify: 20 tests) pass
against dovecote.oslo on the test RabbitMQ. They run in a process of their
own: the import hook in tests/oslo_functional/conftest.py makes
``oslo_messaging`` resolve to dovecote.oslo there."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.interop, pytest.mark.broker]

FOLDER = pathlib.Path(__file__).resolve().parent.parent / "oslo_functional"


def test_oslo_messagings_functional_suite_passes_20_of_20(rabbitmq: str) -> None:
    env = dict(os.environ, RPC_TRANSPORT_URL=rabbitmq, NOTIFY_TRANSPORT_URL=rabbitmq)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--confcutdir", str(FOLDER), "-o", "addopts=", "-q", "--timeout", "60",
         "-W", "ignore::DeprecationWarning", str(FOLDER / "test_oslo_functional.py")],
        cwd=FOLDER, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\b20 passed\b", summary), summary
    assert not re.search(r"failed|error|skipped", summary), summary
