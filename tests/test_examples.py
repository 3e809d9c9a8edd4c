"""The examples gallery (``examples/*.py`` beside the quickstart) runs as each
script's docstring says: every script is run as a user runs it, in a
subprocess, and its output checked line by line, so that a broken promise
(a call lost on SIGTERM, an actor running two calls at once, a pool member
seeing a notification another took, a dead letter that does not come back)
shows as a changed line, not only as an exit status.

The scripts leave structlog unconfigured: dovecote then writes only warnings
and errors, to stderr, so stderr is empty except where an example provokes
them on purpose (requeues and dead letters, Ctrl+C).
"""

from __future__ import annotations

import collections
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import IO

import pykka
import pytest
from _rpc_support import delete_queues
from conftest import ROOT

import dovecote

pytestmark = pytest.mark.timeout(90)

EXAMPLES = ROOT / "examples"
#: The longest a test waits for one line or one exit (each wait is bounded).
PATIENCE = 30.0


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` to its end."""
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _sigint_as_in_a_terminal() -> None:
    """In the child, before the example starts: SIGINT back to its default. A
    shell without job control starts background jobs with SIGINT ignored, and
    children inherit that; Python then installs no Ctrl+C handler, and neither
    does dovecote (it only replaces Python's own)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """An example running on in a subprocess: its stdout lines as they come
    (read with a bounded wait), and all of its output once it has ended."""

    def __init__(self, name: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            preexec_fn=_sigint_as_in_a_terminal)  # noqa: PLW1509 - it only resets SIGINT
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], out: bool) -> None:
        for line in stream:
            (self.stdout if out else self.stderr).append(line.rstrip("\n"))
            if out:
                self._lines.put(line.rstrip("\n"))
        if out:
            self._lines.put(None)  # end of output

    def next_line(self) -> str:
        """The next stdout line; fails after ``PATIENCE`` seconds or at the end."""
        try:
            line = self._lines.get(timeout=PATIENCE)
        except queue.Empty:
            pytest.fail(f"no line within {PATIENCE} s; stderr: {self.stderr}")
        if line is None:
            pytest.fail(f"the example ended early; stderr: {self.stderr}")
        return line

    def finish(self) -> int:
        """Wait for the exit status, and for all of the output."""
        try:
            status = self.process.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the example did not end; stdout: {self.stdout}, stderr: {self.stderr}")
        for reader in self._readers:
            reader.join(PATIENCE)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(PATIENCE)


@pytest.fixture
def topic() -> str:
    return f"example_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rabbit_client_transport(rabbitmq: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(rabbitmq)
    yield transport
    transport.cleanup()


# -- blocking_service.py ----------------------------------------------------------------
def test_blocking_service_on_memory_serves_in_the_main_thread_and_stops_on_sigterm() -> None:
    done = run_example("blocking_service.py")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"ready: serving 'jobs' on memory://blocking-service \(pid \d+\)",
                        lines[0])
    assert lines[1:] == [
        "working on job-1",
        "finished job-1",
        "client got {'job': 'job-1', 'thread': 'MainThread'}",
        "working on job-2",
        "finished job-2",
        ("client got {'job': 'job-2', 'thread': 'MainThread'} (answered although SIGTERM came"
         " first)"),
        "stopped by SIGTERM",
    ]


@pytest.mark.broker
@pytest.mark.parametrize(("sig", "stopped"), [(signal.SIGTERM, "stopped by SIGTERM"),
                                              (signal.SIGINT, "stopped by Ctrl+C")],
                         ids=["SIGTERM", "SIGINT"])
def test_blocking_service_answers_the_call_in_flight_then_stops(
    rabbitmq: str, rabbit_client_transport: dovecote.Transport, topic: str, sig: int,
    stopped: str,
) -> None:
    service = Running("blocking_service.py", rabbitmq, topic)
    try:
        ready = service.next_line()
        assert ready.startswith(f"ready: serving {topic!r} on rabbit://guest:****@127.0.0.1:5672/")
        client = dovecote.get_rpc_client(rabbit_client_transport, dovecote.Target(topic=topic),
                                         timeout=PATIENCE)
        assert client.call({}, "work", job="job-1") == {"job": "job-1", "thread": "MainThread"}
        # job-2 runs for 1.5 s; the signal comes while it runs, and before its reply.
        in_flight = client.call_async({}, "work", job="job-2", seconds=1.5)
        assert [service.next_line() for _ in range(3)] == [
            "working on job-1", "finished job-1", "working on job-2"]
        with pytest.raises(pykka.Timeout):
            in_flight.get(timeout=0)  # not answered yet
        service.process.send_signal(sig)
        assert in_flight.get(timeout=PATIENCE) == {"job": "job-2", "thread": "MainThread"}
        assert service.finish() == 0
    finally:
        service.kill()
        delete_queues(rabbitmq, topic, f"{topic}.host-1")
    assert service.stdout[1:] == ["working on job-1", "finished job-1", "working on job-2",
                                  "finished job-2", stopped]
    if sig == signal.SIGTERM:
        assert service.stderr == []
    else:  # dovecote's one warning for a server stopped by Ctrl+C
        assert len(service.stderr) == 1, service.stderr
        assert "[warning  ] server.interrupted" in service.stderr[0]


# -- actor_endpoints.py -----------------------------------------------------------------
def test_actor_endpoints_keep_state_one_call_at_a_time() -> None:
    done = run_example("actor_endpoints.py")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "8 clients x 20 calls: 100 reserved, 60 refused (stock was 100)",
        "stock now: {'widget': 0}",
        "most reserve() calls running at once: 1",
    ]
    assert re.fullmatch(r"threads reserve\(\) ran in: \['Inventory-\d+'\]", lines[3])
    assert lines[4:] == [
        "report still running meanwhile: True",
        "report: report ready",
        "actors:",
        "  dispatcher DispatcherActor  x1",
        "  endpoint   Inventory        x1",
        "  endpoint   Reports          x1",
        "  listener   ListenerActor    x1",
        "  worker     WorkerActor      x4",
        "Inventory's calls by outcome: reserve expected_error x60, reserve ok x100, stats ok x1",
        "trace of one reserve call:",
        "  listener   ListenerActor    message.received",
        "  dispatcher DispatcherActor  message.queued",
        "  endpoint   Inventory        dispatch.started",
        "  endpoint   Inventory        reply.sent",
        "  endpoint   Inventory        dispatch.ok",
        "done",
    ]


# -- notifications.py -------------------------------------------------------------------
#: A line of dovecote's own (structlog unconfigured): time, [level], event.
LOG_LINE = re.compile(r"\S+Z \[(\w+) *\] (\S+) ")


def test_notifications_pools_requeue_dead_letters_and_replay() -> None:
    done = run_example("notifications.py")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    shared = re.fullmatch(r"pool metering: 10 notifications, each handled once: True; "
                          r"member-1 took (\d+), member-2 took (\d+)", lines[0])
    assert shared, lines[0]
    first, second = int(shared[1]), int(shared[2])
    assert first + second == 10
    assert first > 0
    assert second > 0
    assert lines[1:] == [
        "pool audit: auditor took 10",
        ("took dead letter: invoice.paid {'invoice': 9, 'amount': 50, 'currency': 'EUR'}"
         " ctxt={'user': 'alice'} redeliveries=2"
         " reason='endpoint asked to requeue (after 2 redeliveries)'"),
        "invoice 9 was tried 3 times; its dead letter is dropped",
        "invoice 7 was tried 3 times (KeyError: 'CHF')",
        "fixed: the endpoint now has a rate for CHF",
        "replayed 1 dead letter(s)",
        "booked invoice 7 for Acme: 120 CHF = 126.00 EUR",
        "dead letters left: 0",
        "done",
    ]
    # stderr: dovecote's warnings and errors about the two failing notifications
    # (each delivered 3 times: 2 requeues, then a dead letter), and the
    # tracebacks of the 3 KeyErrors; nothing else.
    logged: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in done.stderr.splitlines():
        found = LOG_LINE.match(line)
        if found:
            logged[found[1], found[2]] += 1
        else:
            assert line.startswith(("Traceback", "  ", "KeyError: 'CHF'")), line
    assert logged == {
        ("warning", "notification.requeued"): 4,
        ("error", "dispatch.failed"): 3,
        ("error", "notification.dead_lettered"): 2,
    }


# -- two_transports.py ------------------------------------------------------------------
@pytest.mark.broker
def test_one_server_serves_through_memory_and_rabbitmq(rabbitmq: str, topic: str) -> None:
    try:
        done = run_example("two_transports.py", rabbitmq, topic)
    finally:
        delete_queues(rabbitmq, topic, f"{topic}.host-1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"serving {topic!r} on memory://two-transports and rabbit://guest:****@127.0.0.1:5672/",
        "via memory: hello alice, call 1 of this endpoint",
        "via rabbit: hello bob, call 2 of this endpoint",
        "via memory: hello carol, call 3 of this endpoint",
        "via rabbit: hello dave, call 4 of this endpoint",
        "actors:",
        "  listener on memory://two-transports: took 2",
        "  listener on rabbit://guest:****@127.0.0.1:5672/: took 2",
        "  and 1 dispatcher, 4 workers for both",
        "RabbitMQ listener removed; via memory: hello erin, call 5 of this endpoint",
        "done",
    ]


def test_two_transports_says_so_when_rabbitmq_cannot_be_reached() -> None:
    done = run_example("two_transports.py", "rabbit://guest:s3cret@127.0.0.1:1/", "nowhere")
    assert done.returncode == 1
    assert done.stdout == ""
    [said] = done.stderr.splitlines()  # one line, no traceback, no password
    assert said.startswith("cannot listen on rabbit://guest:****@127.0.0.1:1/: ")
    assert "Connection refused" in said
    assert "s3cret" not in said


def test_metrics_and_traces_switched_on() -> None:
    done = run_example("metrics_and_traces.py")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    handled = "dovecote_messages_handled_total{kind=rpc,method=take,outcome=%s,server=store-1} 1"
    calls = "dovecote_rpc_client_call_seconds_count{method=take,outcome=%s,topic=inventory} 1"
    assert done.stdout.splitlines() == [
        "take apple -> 2",
        "take pear -> LookupError: no pear left",
        "metrics:",
        "  " + handled % "ok",
        "  " + handled % "expected_error",
        "  " + calls % "ok",
        "  " + calls % "remote_error",
        "traces:",
        "  call take [client] unset",
        "    process take [server] unset",
        "      inventory.take [internal] unset",
        "  call take [client] error",
        "    process take [server] unset",  # a declared exception is the method's answer
        "      inventory.take [internal] error",
        "one trace per call: True",
    ]
