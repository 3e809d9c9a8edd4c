"""The ``dovecote`` command, run as a user runs it: in a subprocess, against the
test RabbitMQ (a server started with ``dovecote serve`` from a test module),
with bad input of every kind (exit status 2, one clear line, no traceback, no
password)."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from _rpc_support import PATIENCE, QueueProbe, delete_queues, running
from conftest import AMQP1_URL

import dovecote
from dovecote.cli._main import main
from dovecote.cli._support import progress

pytestmark = pytest.mark.timeout(90)

HERE = Path(__file__).resolve().parent.parent  # tests/: cli_service.py's folder
_SCRIPT = Path(sys.executable).with_name("dovecote")
DOVECOTE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dovecote.cli._main"]
PASSWORD = "pa55-S3CRET"
UNREACHABLE = f"rabbit://guest:{PASSWORD}@127.0.0.1:1/"
SUBCOMMANDS = ["call", "cast", "notify", "listen", "serve", "servers", "describe", "ping",
               "actors", "events", "logs", "url", "dead-letters"]


def dovecote_cli(*args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    """Run ``dovecote ARGS`` to its end (from the tests' folder, as ``serve`` imports)."""
    return subprocess.run([*DOVECOTE, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=HERE, check=False)


class Background:
    """``dovecote ARGS`` running on: its stdout and stderr lines as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*DOVECOTE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=HERE, env=None if env is None else {**os.environ, **env})
        self.out: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.err_lines: list[str] = []
        self._err: queue.SimpleQueue[str] = queue.SimpleQueue()
        for stream, into in ((self.process.stdout, self.out), (self.process.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, into: queue.SimpleQueue[str]) -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    def stderr_line(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first stderr line that ``predicate`` accepts (all are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._err.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no such line on stderr; got {self.err_lines}")
            self.err_lines.append(line)
            if predicate(line):
                return line

    def stdout_line(self, timeout: float = 30) -> str:
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"nothing on stdout; stderr: {self.rest_of_stderr()}")

    def rest_of_stderr(self) -> list[str]:
        while True:
            try:
                self.err_lines.append(self._err.get_nowait())
            except queue.Empty:
                return self.err_lines

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"dovecote did not stop on {sig}; stderr: {self.rest_of_stderr()}")


def assert_bad_input(done: subprocess.CompletedProcess[str], says: str) -> None:
    """Exit status 2, nothing on stdout, one clear line on stderr."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr


# -- without a broker -------------------------------------------------------------------
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    done = dovecote_cli(command, "--help")
    assert done.returncode == 0
    assert f"usage: dovecote {command}" in done.stdout
    assert "--json" in done.stdout


BAD_INPUT = [
    (["call", "memory://x", "t", "m", "--args", "{bad"], "--args is not valid JSON"),
    (["call", "memory://x", "t", "m", "--args", "[1, 2]"], "--args must be a JSON object"),
    (["cast", "memory://x", "t", "m", "--ctxt", "nope"], "--ctxt is not valid JSON"),
    (["notify", "memory://x", "ev", "--payload", "{'single': 1}"], "--payload is not valid JSON"),
    (["call", f"nosuch://u:{PASSWORD}@h/", "t", "m"], "no driver for scheme 'nosuch'"),
    (["call", f"rabbit//u:{PASSWORD}@h", "t", "m"], "no scheme"),
    (["ping", f"rabbit://u:{PASSWORD}@h:99999/", "t"], "is not a number from 1 to 65535"),
    (["call", UNREACHABLE, "t", "m"], "cannot reach the broker"),
    (["cast", UNREACHABLE, "t", "m"], "cannot reach the broker"),
    (["notify", UNREACHABLE, "ev"], "cannot reach the broker"),
    (["actors", UNREACHABLE, "t", "--server", "s"], "cannot reach the broker"),
    (["events", UNREACHABLE, "t", "--server", "s"], "cannot reach the broker"),
    (["ping", f"amqp1://guest:{PASSWORD}@127.0.0.1:1/", "t"], "cannot reach the broker"),
    (["serve", UNREACHABLE, "t", "no_such_module:x"], "cannot import 'no_such_module'"),
    (["serve", UNREACHABLE, "t", "cli_service:nothing"], "has no attribute 'nothing'"),
    (["serve", UNREACHABLE, "t", "cli_service:broken"], "raised RuntimeError"),
    (["serve", UNREACHABLE, "t", "cli_service"], "is not MODULE:ATTR"),
    (["serve", UNREACHABLE, "t", "cli_service:Service"], "must be a list of endpoints"),
    (["logs", "/no/such/file.log"], "cannot read /no/such/file.log"),
    (["events", "memory://x", "t", "--limit", "0"], "--limit must be more than 0"),
    (["call", "memory://x", "t", "m", "--timeout", "-1"], "--timeout must be more than 0"),
    (["ping", "memory://x", "t", "--count", "x"], "invalid int value"),
    (["notify", "memory://x", "ev", "--priority", "loud"], "invalid choice"),
    (["call", "memory://x"], "the following arguments are required"),
]


@pytest.mark.parametrize(("argv", "says"), BAD_INPUT, ids=[" ".join(c[:1] + c[3:4])
                                                           for c, _ in BAD_INPUT])
def test_bad_input_is_exit_status_2_with_a_clear_message(argv: list[str], says: str) -> None:
    assert_bad_input(dovecote_cli(*argv), says)


def test_listen_to_an_unreachable_broker_is_bad_input() -> None:
    assert_bad_input(dovecote_cli("listen", UNREACHABLE, timeout=60), "cannot reach the broker")


@pytest.mark.parametrize("level", [None, "warning"])
def test_serve_names_itself_after_the_host_and_logs_at_info(level: str | None) -> None:
    """Without --server the server is named after the host; ``serve`` logs from
    INFO unless ``DOVECOTE_LOG_LEVEL`` says otherwise."""
    server = Background("serve", "memory://solo", "t", "cli_service:endpoints",
                        env=None if level is None else {"DOVECOTE_LOG_LEVEL": level})
    ready = server.stderr_line(lambda line: line.startswith("serving "))
    assert ready.startswith(f"serving t.{os.uname().nodename} on memory://solo ")
    assert server.stop(signal.SIGTERM) == 0
    started = [line for line in server.rest_of_stderr() if "server.started" in line]
    assert bool(started) == (level is None)
    assert not any(line.startswith("{") for line in started)  # readable, not JSON


def test_a_bad_log_level_is_bad_input() -> None:
    done = subprocess.run([*DOVECOTE, "url", "memory://"], capture_output=True, text=True,
                          timeout=30, check=False, env={**os.environ, "DOVECOTE_LOG_LEVEL": "loud"})
    assert_bad_input(done, "DOVECOTE_LOG_LEVEL: unknown log level 'loud'")


def test_url_shows_the_driver_and_hides_passwords() -> None:
    url = f"rabbit://user:{PASSWORD}@h1:5672,user:{PASSWORD}@h2/vhost?ssl_key_password=k3y"
    done = dovecote_cli("url", url)
    assert done.returncode == 0
    assert "dovecote.drivers.kombu.KombuDriver" in done.stdout
    assert PASSWORD not in done.stdout
    assert "k3y" not in done.stdout
    parsed = json.loads(dovecote_cli("url", url, "--json").stdout)
    assert parsed["hosts"] == ["user:****@h1:5672", "user:****@h2"]
    assert parsed["virtual_host"] == "vhost"
    assert parsed["options"] == {"ssl_key_password": "****"}
    assert "k3y" not in parsed["url"]


def test_replay_progress_shows_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress(io.StringIO()) is None
    terminal = Terminal()
    show = progress(terminal)
    assert show is not None
    show(1)
    show(2)
    assert terminal.getvalue() == "\rreplayed 1 ...\rreplayed 2 ..."


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
    url = f"memory://cli-{unique}"
    transport = dovecote.get_transport(url)
    endpoint = Failing()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic="notifications")], [endpoint])
    with structlog.testing.capture_logs(), running(listener):
        notifier = dovecote.Notifier(transport, publisher_id="p")
        notifier.error({}, "x.failed", {"n": 1})
        notifier.error({}, "x.failed", {"n": 2})
        assert endpoint.parked.wait(PATIENCE)
        listener.stop()
        assert listener.wait(PATIENCE)
        assert main(["dead-letters", "take", url, "notifications", "error", "--limit", "1",
                     "--timeout", "0.2", "--json"]) == 0
        taken = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(taken) == 1
        assert "broken endpoint" in taken[0]["reason"]
        assert taken[0]["message"]["event_type"] == "x.failed"
        endpoint.fail = False
        listener.start()
        assert main(["dead-letters", "replay", url, "notifications", "error",
                     "--timeout", "0.2"]) == 0
        assert "replayed 1 notification(s)" in capsys.readouterr().out
        assert endpoint.handled.wait(PATIENCE)


# -- logs ----------------------------------------------------------------------------------
WRITE_LOG = textwrap.dedent("""
    import sys
    import dovecote
    from dovecote import Target

    class Api:
        def echo(self, ctxt, value):
            return value

    dovecote.configure_logging(level="debug", path=sys.argv[1])
    transport = dovecote.get_transport("memory://logs")
    server = dovecote.get_rpc_server(transport, Target(topic="t", server="s"), [Api()])
    server.start()
    client = dovecote.get_rpc_client(transport, Target(topic="t"), timeout=5)
    for i in range(3):
        client.call({}, "echo", value=i)
    server.stop()
    assert server.wait(5)
    transport.cleanup()
""")


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "service.log"
    subprocess.run([sys.executable, "-c", WRITE_LOG, str(path)], check=True, timeout=30)
    with path.open("a") as handle:
        handle.write("not JSON: a line from something else\n")
    return path


def log_records(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_logs_filters_by_event_actor_msg_id_and_time(log_file: Path) -> None:
    finished = log_records(dovecote_cli("logs", str(log_file), "--event", "dispatch.ok",
                                        "--json"))
    assert len(finished) == 3
    assert {r["event"] for r in finished} == {"dispatch.ok"}
    workers = log_records(dovecote_cli("logs", str(log_file), "--actor", "WorkerActor", "--json"))
    assert workers
    assert {r["actor"] for r in workers} == {"WorkerActor"}
    urn = workers[0]["actor_urn"]
    by_urn = log_records(dovecote_cli("logs", str(log_file), "--actor", urn, "--json"))
    assert by_urn
    assert {r["actor_urn"] for r in by_urn} == {urn}
    msg_id = finished[0]["msg_id"]
    about = log_records(dovecote_cli("logs", str(log_file), "--msg-id", msg_id, "--json"))
    assert {"message.received", "message.queued", "dispatch.started", "reply.sent",
            "dispatch.ok"} == {r["event"] for r in about}
    assert log_records(dovecote_cli("logs", str(log_file), "--since", "2999-01-01T00:00:00",
                                    "--json")) == []
    human = dovecote_cli("logs", str(log_file), "--event", "dispatch.ok")
    assert human.stdout.count("dispatch.ok") == 3
    assert_bad_input(dovecote_cli("logs", str(log_file), "--since", "yesterday"), "ISO 8601")


def test_logs_trace_shows_one_message_through_the_actors(log_file: Path) -> None:
    first = log_records(dovecote_cli("logs", str(log_file), "--event", "dispatch.ok",
                                     "--json"))[0]
    done = dovecote_cli("logs", str(log_file), "--trace", first["msg_id"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[-1] for line in lines] == [
        "message.received", "message.queued", "dispatch.started", "reply.sent", "dispatch.ok"]
    assert lines[0].startswith("+    0.000 ms")
    assert "ListenerActor" in lines[0]
    assert "WorkerActor" in lines[-1]
    steps = log_records(dovecote_cli("logs", str(log_file), "--trace", first["msg_id"],
                                     "--json"))
    assert [s["elapsed_ms"] for s in steps] == sorted(s["elapsed_ms"] for s in steps)
    assert steps[-1]["spent_ms"] is None
    assert_bad_input(dovecote_cli("logs", str(log_file), "--trace", "nosuchid"),
                     "no line of")


# -- against the test RabbitMQ -----------------------------------------------------------
@pytest.fixture(scope="module", params=["rabbit", "amqp1"])
def bus(request: pytest.FixtureRequest, rabbitmq: str) -> str:
    """The broker URL, through each driver."""
    return rabbitmq if request.param == "rabbit" else AMQP1_URL


@pytest.fixture(scope="module")
def served(bus: str) -> Iterator[tuple[str, str]]:
    """``dovecote serve`` of :mod:`cli_service` on a fresh topic: (url, topic)."""
    topic = f"cli-{os.urandom(6).hex()}"
    server = Background("serve", bus, topic, "cli_service:ENDPOINTS", "--server", "s1")
    server.stderr_line(lambda line: line.startswith("serving "))
    yield bus, topic
    assert server.stop(signal.SIGTERM) == 0
    assert any("server.stopped" in line for line in server.rest_of_stderr())
    delete_queues(bus.replace("amqp1", "rabbit"), topic, f"{topic}.s1")


def test_call_prints_the_result(served: tuple[str, str]) -> None:
    url, topic = served
    value = {"nested": [1, "ünï", None, {"deep": True}]}
    done = dovecote_cli("call", url, topic, "echo", "--args", json.dumps({"value": value}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == value
    compact = dovecote_cli("call", url, topic, "echo", "--server", "s1", "--args",
                           '{"value": 7}', "--json")
    assert compact.stdout == "7\n"
    ctxt = dovecote_cli("call", url, topic, "whoami", "--ctxt", '{"user_id": "u-1"}', "--json")
    assert json.loads(ctxt.stdout)["user_id"] == "u-1"


def test_a_remote_error_is_exit_status_1(served: tuple[str, str]) -> None:
    url, topic = served
    done = dovecote_cli("call", url, topic, "fail", "--args", '{"text": "it broke"}')
    assert done.returncode == 1
    assert "raised ValueError: it broke" in done.stderr
    assert "Traceback" not in done.stderr
    scripted = dovecote_cli("call", url, topic, "fail", "--args", '{"text": "again"}', "--json")
    assert scripted.returncode == 1
    assert json.loads(scripted.stdout) == {"error": {"type": "ValueError", "message": "again"}}


def test_no_reply_is_exit_status_1(served: tuple[str, str]) -> None:
    url, topic = served
    done = dovecote_cli("call", url, topic, "sleep", "--server", "s1", "--args",
                        '{"seconds": 3}', "--timeout", "1")
    assert done.returncode == 1
    assert f"no reply from {topic}.s1 within 1 s" in done.stderr
    nobody = dovecote_cli("call", url, topic, "echo", "--server", "nobody", "--args",
                          '{"value": 1}', "--timeout", "20")
    assert nobody.returncode == 1
    assert f"no server nobody of topic {topic}" in nobody.stderr


def test_an_unknown_method_is_bad_input(served: tuple[str, str]) -> None:
    url, topic = served
    assert_bad_input(dovecote_cli("call", url, topic, "nosuch"), "has no method 'nosuch'")
    versioned = dovecote_cli("call", url, topic, "echo", "--version", "9.0", "--args",
                             '{"value": 1}')
    assert_bad_input(versioned, "has no version of 'echo'")
    assert "method 'echo' exists in the default namespace" in versioned.stderr  # where it is


def test_cast_and_fanout_reach_the_server(served: tuple[str, str]) -> None:
    url, topic = served
    marker = os.urandom(4).hex()
    done = dovecote_cli("cast", url, topic, "remember", "--args",
                        json.dumps({"value": f"{marker}-direct"}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cast remember to ")
    fanout = dovecote_cli("cast", url, topic, "remember", "--fanout", "--json", "--args",
                          json.dumps({"value": f"{marker}-fanout"}))
    assert json.loads(fanout.stdout)["fanout"] is True
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        seen = json.loads(dovecote_cli("call", url, topic, "remembered", "--json").stdout)
        if {f"{marker}-direct", f"{marker}-fanout"} <= set(seen):
            break
    else:
        pytest.fail(f"casts did not arrive: {seen}")


def test_ping_prints_round_trip_times(served: tuple[str, str]) -> None:
    url, topic = served
    done = dovecote_cli("ping", url, topic, "--server", "s1", "--count", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.startswith(f"pong from {topic}.s1 (") for line in lines[:2]] == [True, True]
    assert lines[2].startswith("2 pong(s): min ")
    assert all(f"{topic}.s1 (host {os.uname().nodename}, pid " in line for line in lines[:2])
    scripted = json.loads(dovecote_cli("ping", url, topic, "--json").stdout)
    assert len(scripted["rtt_ms"]) == 3
    assert scripted["min_ms"] <= scripted["avg_ms"] <= scripted["max_ms"]


def test_actors_prints_a_table(served: tuple[str, str]) -> None:
    url, topic = served
    done = dovecote_cli("actors", url, topic, "--server", "s1")
    assert done.returncode == 0, done.stderr
    who, header, *rows = done.stdout.splitlines()
    assert who.startswith(f"actors of {topic}.s1")
    assert header.split() == ["KIND", "ACTOR", "TARGET", "ALIVE", "MAILBOX", "HANDLED",
                              "FAILED", "URN"]
    kinds = [row.split()[0] for row in rows]
    assert {"listener", "dispatcher", "worker"} <= set(kinds)
    assert kinds.count("worker") == 8
    assert ":guest@" not in done.stdout
    records = json.loads(dovecote_cli("actors", url, topic, "--server", "s1", "--json").stdout)
    assert all(r["alive"] for r in records)
    assert {"listener", "dispatcher", "worker"} <= {r["kind"] for r in records}


def test_events_show_what_the_actors_did(served: tuple[str, str]) -> None:
    url, topic = served
    secret = f"value-{os.urandom(4).hex()}"
    assert dovecote_cli("call", url, topic, "echo", "--server", "s1", "--args",
                        json.dumps({"value": secret})).returncode == 0
    done = dovecote_cli("events", url, topic, "--server", "s1", "--limit", "1000", "--json")
    events = log_records(done)
    assert secret not in done.stdout
    assert ":guest@" not in done.stdout
    finished = [e for e in events if e["event"] == "dispatch.ok" and e.get("method") == "echo"]
    assert finished
    msg_id = finished[-1]["msg_id"]
    about = log_records(dovecote_cli("events", url, topic, "--server", "s1", "--msg-id", msg_id,
                                     "--json"))
    assert {"message.received", "dispatch.started", "dispatch.ok"} <= {e["event"] for e in about}
    workers = log_records(dovecote_cli("events", url, topic, "--server", "s1", "--kind",
                                       "worker", "--json"))
    assert workers
    assert {e["kind"] for e in workers} == {"worker"}
    human = dovecote_cli("events", url, topic, "--server", "s1", "--limit", "5")
    assert len(human.stdout.splitlines()) == 6
    assert human.stdout.startswith(f"events of {topic}.s1:\n")


def test_events_follow_prints_new_events_until_ctrl_c(served: tuple[str, str]) -> None:
    url, topic = served
    follower = Background("events", url, topic, "--server", "s1", "--follow", "--json",
                          "--limit", "1")
    follower.stdout_line()  # the last event so far
    marker = f"{os.urandom(4).hex()}"
    assert dovecote_cli("call", url, topic, "whoami", "--server", "s1", "--ctxt",
                        json.dumps({"marker": marker})).returncode == 0
    while True:
        event = json.loads(follower.stdout_line())
        if event["event"] == "dispatch.ok" and event.get("method") == "whoami":
            break
    assert marker not in json.dumps(event)
    assert follower.stop() == 0


def test_notify_and_listen_in_a_pool_of_its_own(bus: str, topic: str) -> None:
    class Real:
        def __init__(self) -> None:
            self.got: queue.SimpleQueue[str] = queue.SimpleQueue()

        def warn(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
                 metadata: dict[str, Any]) -> None:
            self.got.put(event_type)

    transport = dovecote.get_transport(bus)
    real = Real()
    listener = dovecote.get_notification_listener(transport, [dovecote.Target(topic=topic)],
                                                  [real])
    try:
        with running(listener):
            listening = Background("listen", bus, "--topic", topic, "--json")
            ready = json.loads(listening.stderr_line(lambda line: "cli.listening" in line))
            assert "its own queue, removed on exit" in ready["message"]
            pool = ready["pool"]
            done = dovecote_cli("notify", bus, "thing.happened", "--topic", topic, "--priority",
                                "warning", "--payload", '{"n": 1}', "--publisher-id", "cli")
            assert done.returncode == 0, done.stderr
            assert done.stdout == f"sent thing.happened to {topic}.warn\n"
            seen = json.loads(listening.stdout_line())
            assert seen["event_type"] == "thing.happened"
            assert seen["priority"] == "warn"
            assert seen["payload"] == {"n": 1}
            assert seen["publisher_id"] == "cli"
            assert real.got.get(timeout=PATIENCE) == "thing.happened"  # not stolen
            assert listening.stop() == 0
            removed = [json.loads(line) for line in listening.rest_of_stderr()]  # all JSON
            assert {"event": "cli.pool_removed", "pool": pool} in [
                {k: r.get(k) for k in ("event", "pool")} for r in removed]
    finally:
        transport.cleanup()
    if bus.startswith("rabbit"):
        with QueueProbe(dovecote.get_transport(bus)) as probe, pytest.raises(Exception,
                                                                             match="NOT_FOUND"):
            probe.depth(pool)
    delete_queues(bus.replace("amqp1", "rabbit"), f"{topic}.warn")


def test_listen_only_the_priorities_asked_for(rabbitmq: str, topic: str) -> None:
    listening = Background("listen", rabbitmq, "--topic", topic, "--priority", "error")
    listening.stderr_line(lambda line: line.startswith("listening to "))
    for priority in ("info", "error"):  # only listen's own pool: no <topic>.<priority> queue
        assert dovecote_cli("notify", rabbitmq, f"x.{priority}", "--topic", topic,
                            "--priority", priority, "--allow-unroutable").returncode == 0
    line = listening.stdout_line()
    assert "x.error" in line
    assert "error" in line.split()
    assert listening.stop(signal.SIGTERM) == 0
    assert listening.out.empty()
    delete_queues(rabbitmq, f"{topic}.info", f"{topic}.error")


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_serve_stops_gracefully_on_sigterm_and_ctrl_c(rabbitmq: str, topic: str,
                                                      executor: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = Background("serve", rabbitmq, topic, "cli_service:endpoints", "--server",
                            "s1", "--executor", executor, "--workers", "2")
        ready = server.stderr_line(lambda line: line.startswith("serving "))
        assert f"serving {topic}.s1 on rabbit://guest:****@" in ready
        done = dovecote_cli("call", rabbitmq, topic, "echo", "--args", '{"value": "x"}')
        assert done.stdout == '"x"\n'
        assert dovecote_cli("ping", rabbitmq, topic, "--count", "1").returncode == 0
        assert server.stop(sig) == 0
        logged = server.rest_of_stderr()
        assert any("server.stopped" in line for line in logged)
        assert not any("Traceback" in line for line in logged)
    delete_queues(rabbitmq, topic, f"{topic}.s1")


def test_events_follow_rides_out_a_server_restart(rabbitmq: str, topic: str) -> None:
    def serve() -> Background:
        server = Background("serve", rabbitmq, topic, "cli_service:endpoints", "--server", "s1",
                            "--workers", "1")
        server.stderr_line(lambda line: line.startswith("serving "))
        return server

    server = serve()
    follower = Background("events", rabbitmq, topic, "--server", "s1", "--follow", "--json",
                          "--limit", "1", "--timeout", "2")
    follower.stdout_line()
    assert server.stop(signal.SIGTERM) == 0
    follower.stderr_line(lambda line: "retrying; Ctrl+C stops" in line)
    server = serve()
    try:
        assert dovecote_cli("call", rabbitmq, topic, "echo", "--server", "s1", "--args",
                            '{"value": 1}').returncode == 0
        while True:
            event = json.loads(follower.stdout_line())
            if event["event"] == "dispatch.ok" and event.get("method") == "echo":
                break
        assert follower.stop() == 0
    finally:
        assert server.stop(signal.SIGTERM) == 0
        delete_queues(rabbitmq, topic, f"{topic}.s1")
