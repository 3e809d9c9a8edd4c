"""The examples gallery (``examples/*.py`` beside the quickstart) runs as each
script's docstring says: every script is run as a user runs it, in a
subprocess, and its output checked line by line, so that a broken promise
(a call lost on SIGTERM, an actor running two calls at once, a pool member
seeing a notification another took, a dead letter that does not come back)
shows as a changed line, not only as an exit status.

The scripts leave structlog unconfigured: dovecote then writes only warnings
and errors, to stderr, so stderr is empty except where an example provokes
them on purpose (requeues and dead letters, Ctrl+C).

Run with no URL, an example uses ``memory://`` and opens no network connection
at all (each is run with every TCP connect refused); given a broker URL, it runs
there and leaves no queue behind (each is run on a vhost of its own, listed
afterwards).
"""

from __future__ import annotations

import collections
import os
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
from _rpc_support import own_vhost, queues_in
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


@pytest.fixture
def vhost(rabbitmq: str) -> Iterator[str]:
    """A RabbitMQ vhost of the test's own, empty at first."""
    with own_vhost("examples") as name:
        yield name


def vhost_url(vhost: str) -> str:
    return f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"


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
    vhost: str, topic: str, sig: int, stopped: str,
) -> None:
    url = vhost_url(vhost)
    service = Running("blocking_service.py", url, topic)
    client_transport = dovecote.get_transport(url)
    try:
        ready = service.next_line()
        assert ready.startswith(
            f"ready: serving {topic!r} on rabbit://guest:****@127.0.0.1:5672/{vhost}")
        client = dovecote.get_rpc_client(client_transport, dovecote.Target(topic=topic),
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
        client_transport.cleanup()
    assert queues_in(vhost) == {}  # the service deleted its queues once it had stopped
    assert service.stdout[1:] == ["working on job-1", "finished job-1", "working on job-2",
                                  "finished job-2", stopped]
    if sig == signal.SIGTERM:
        assert service.stderr == []
    else:  # dovecote's one warning for a server stopped by Ctrl+C
        assert len(service.stderr) == 1, service.stderr
        assert service.stderr[0].startswith("server.interrupted "), service.stderr


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
#: A line of dovecote's own (logging unconfigured: Python's last-resort handler writes
#: the message alone): the event, its fields, among them the outcome.
LOG_LINE = re.compile(r"([a-z_]+\.[a-z_]+) .*\boutcome=(\w+)")


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
        ("notification.requeued", "requeued"): 4,
        ("dispatch.failed", "error"): 3,
        ("notification.dead_lettered", "dead_lettered"): 2,
    }


# -- two_transports.py ------------------------------------------------------------------
def two_transports_said(topic: str, broker: str) -> list[str]:
    """What two_transports.py prints when its second transport is ``broker``."""
    return [
        f"serving {topic!r} on memory://two-transports and {broker}",
        "via memory: hello alice, call 1 of this endpoint",
        "via broker: hello bob, call 2 of this endpoint",
        "via memory: hello carol, call 3 of this endpoint",
        "via broker: hello dave, call 4 of this endpoint",
        "actors:",
        "  listener on memory://two-transports: took 2",
        f"  listener on {broker}: took 2",
        "  and 1 dispatcher, 4 workers for both",
        "broker listener removed; via memory: hello erin, call 5 of this endpoint",
        "done",
    ]


@pytest.mark.broker
def test_one_server_serves_through_memory_and_rabbitmq(vhost: str, topic: str) -> None:
    done = run_example("two_transports.py", vhost_url(vhost), topic)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == two_transports_said(
        topic, f"rabbit://guest:****@127.0.0.1:5672/{vhost}")
    assert queues_in(vhost) == {}


def test_two_transports_without_a_url_stays_in_process() -> None:
    done = run_example("two_transports.py")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == two_transports_said(
        "two-transports", "memory://two-transports-broker")


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
    sent = "dovecote_messages_sent_total{kind=call,outcome=%s,topic=inventory} 1"
    assert done.stdout.splitlines() == [
        "take apple -> 2",
        "take pear -> LookupError: no pear left",
        "metrics:",
        "  " + handled % "ok",
        "  " + handled % "expected_error",
        "  " + calls % "ok",
        "  " + calls % "remote_error",
        "  " + sent % "ok",
        "  " + sent % "remote_error",
        "traces:",  # a call's spans are named by its rpc.method: <topic>/<method>
        "  inventory/take [client] unset",
        "    inventory/take [server] unset",
        "      inventory.take [internal] unset",
        "  inventory/take [client] error",
        "    inventory/take [server] unset",  # a declared exception is the method's answer
        "      inventory.take [internal] error",
        "one trace per call: True",
    ]


# -- every example: memory:// unless given a broker, and then no queue left behind ------
#: Runs an example (``sys.argv[1:]``: its path and arguments) with every TCP
#: connection refused: one attempt ends the process at once, saying where to.
NO_NETWORK = '''
import os, runpy, socket, sys

def refused(original):
    def connect(sock, address, *rest):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            os.write(2, f"connected to {address!r}\\n".encode())
            os._exit(3)
        return original(sock, address, *rest)
    return connect

socket.socket.connect = refused(socket.socket.connect)
socket.socket.connect_ex = refused(socket.socket.connect_ex)
sys.argv = sys.argv[1:]
if sys.argv[0] == "pytest":
    runpy.run_module("pytest", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
'''
#: Each example, and what its last line says when it ran to its end.
SCRIPTS = {
    "quickstart.py": "done",
    "actor_endpoints.py": "done",
    "notifications.py": "done",
    "two_transports.py": "done",
    "metrics_and_traces.py": "one trace per call: True",
    "blocking_service.py": "stopped by SIGTERM",
}


def test_every_example_is_run_here() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == {*SCRIPTS, "test_service_example.py"}


@pytest.mark.parametrize("name", [*SCRIPTS, "test_service_example.py"])
def test_without_a_url_an_example_opens_no_connection(name: str) -> None:
    """Not even with ``DOVECOTE_URL`` naming a broker (it is the command's, not theirs)."""
    script = ["pytest", "-p", "no:cacheprovider", str(EXAMPLES / name)] \
        if name.startswith("test_") else [str(EXAMPLES / name)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOVECOTE_")}
    env["DOVECOTE_URL"] = "rabbit://guest:guest@127.0.0.1:5672/"
    done = subprocess.run([sys.executable, "-c", NO_NETWORK, *script], capture_output=True,
                          text=True, timeout=60, check=False, env=env, cwd=ROOT)
    assert "connected to" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.splitlines()[-1]
    if name in SCRIPTS:
        assert last == SCRIPTS[name]
    else:
        assert " passed in " in last, done.stdout


def test_the_guard_catches_a_connection() -> None:
    """What the test above would see of an example that reached for a broker."""
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, str(EXAMPLES / "quickstart.py"),
         "rabbit://guest:guest@127.0.0.1:5672/"], capture_output=True, text=True, timeout=60,
        check=False)
    assert done.returncode == 3
    assert "connected to ('127.0.0.1', 5672)" in done.stderr


@pytest.mark.broker
@pytest.mark.parametrize("name", ["quickstart.py", "actor_endpoints.py", "notifications.py",
                                  "metrics_and_traces.py"])
def test_on_a_broker_an_example_leaves_no_queue(vhost: str, name: str) -> None:
    done = run_example(name, vhost_url(vhost))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == SCRIPTS[name]
    assert queues_in(vhost) == {}


@pytest.mark.broker
def test_the_example_tests_on_a_broker_leave_no_queue(vhost: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         str(EXAMPLES / "test_service_example.py"), f"--dovecote-url={vhost_url(vhost)}"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dovecote: transports on rabbit://guest:****@127.0.0.1:5672/{vhost}" in done.stdout
    assert queues_in(vhost) == {}
