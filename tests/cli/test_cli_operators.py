"""The ``dovecote`` command for operators and scripts (issue 23, part 2):
``--version``, the URL from ``DOVECOTE_URL`` or an oslo.config file,
``servers`` and ``describe``, which server answered ``ping``/``actors``/
``events``, casts and notifications nobody would get, input checked before
any connection, ``url``'s warnings, a closed pipe, and ``serve --json``.

Each subcommand runs in a subprocess against the test RabbitMQ (``rabbit://``
and ``amqp1://``); ``memory://`` cases run it in-process (``main``), where
the in-process broker and its servers are."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from _rpc_support import delete_queues, running
from conftest import AMQP1_URL
from test_cli import DOVECOTE, HERE, PASSWORD, UNREACHABLE, Background, assert_bad_input
from test_cli_hardening import HOSTILE, in_process, printable_only, queue_exists

import dovecote
from dovecote.cli._main import parse

pytestmark = pytest.mark.timeout(90)

CLI_TESTS = Path(__file__).resolve().parent
VERSION = importlib.metadata.version("dovecote")
HOST = os.uname().nodename


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``dovecote ARGS`` to its end, without ``DOVECOTE_URL`` unless ``env`` sets it."""
    environ = {k: v for k, v in os.environ.items() if k != "DOVECOTE_URL"}
    return subprocess.run([*DOVECOTE, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=HERE, check=False, env={**environ, **(env or {})})


# -- without a broker -------------------------------------------------------------------
def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout == f"dovecote {VERSION}\n"


def test_the_url_comes_from_dovecote_url_unless_given() -> None:
    env = {"DOVECOTE_URL": f"rabbit://u:{PASSWORD}@envhost:5672/"}
    found = json.loads(run("url", "--json", env=env).stdout)
    assert found["hosts"] == ["u:****@envhost:5672"]
    assert found["source"] == "DOVECOTE_URL"
    given = run("url", "rabbit://u:p@cmdline/", "--json", env=env)
    assert json.loads(given.stdout)["hosts"] == ["u:****@cmdline"]
    assert PASSWORD not in given.stdout + given.stderr


def test_without_any_url_is_bad_input() -> None:
    assert_bad_input(run("ping", "t"), "no transport URL: give it as the first argument")
    assert_bad_input(run("url"), "set DOVECOTE_URL")


def test_a_url_where_the_topic_goes_is_bad_input() -> None:
    """``dovecote ping URL`` (the topic forgotten) is not a ping of topic URL."""
    assert_bad_input(run("ping", "rabbit://guest:guest@127.0.0.1:1/"),
                     "looks like a transport URL, but then an argument after it is missing")


@pytest.mark.parametrize("argv", [
    ["call", "t", "m", "--server", "s"], ["call", "--server", "s", "t", "m"],
    ["call", "t", "--server", "s", "m"],
])
def test_without_the_url_options_may_stand_anywhere(argv: list[str]) -> None:
    args = parse(argv)
    assert (args.url, args.topic, args.method, args.server) == (None, "t", "m", "s")


@pytest.mark.parametrize("argv", [
    ["call", "memory://x", "t", "m", "--server", "s"],
    ["call", "--server", "s", "memory://x", "t", "m"],
    ["call", "memory://x", "--server", "s", "t", "m"],
    ["call", "memory://x", "t", "--server", "s", "m"],
])
def test_with_the_url_options_may_stand_anywhere(argv: list[str]) -> None:
    args = parse(argv)
    assert (args.url, args.topic, args.method, args.server) == ("memory://x", "t", "m", "s")


def test_the_url_is_optional_after_an_action_too() -> None:
    assert (parse(["dead-letters", "take", "t", "info"]).url,
            parse(["dead-letters", "take", "memory://x", "t", "info"]).url) == (None, "memory://x")
    assert parse(["notify", "ev"]).event_type == "ev"
    assert parse(["listen", "--priority", "WARNING", "error"]).priority == ["warning", "error"]


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "service.conf"
    path.write_text(text)
    return str(path)


def test_config_file_gives_the_url_and_the_rabbit_options(tmp_path: Path) -> None:
    conf = config_file(tmp_path, f"""
[DEFAULT]
transport_url = rabbit://guest:{PASSWORD}@127.0.0.1:5672/
[oslo_messaging_rabbit]
rabbit_qos_prefetch_count = 7
heartbeat_rate = 5
""")
    done = run("url", "--config-file", conf, "--json", env={"DOVECOTE_URL": "memory://env"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["hosts"] == ["guest:****@127.0.0.1:5672"]  # the file's, over DOVECOTE_URL
    assert found["source"] == f"--config-file {conf}"
    assert found["config_options"] == {"prefetch_count": 7}
    assert "heartbeat_rate is set, but dovecote does not implement it" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    given = json.loads(run("url", "rabbit://other/", "--config-file", conf, "--json").stdout)
    assert (given["hosts"], given["config_options"]) == (["other"], {"prefetch_count": 7})


def test_config_file_notifications_url_is_used_for_notifications(
        rabbitmq: str, tmp_path: Path, topic: str) -> None:
    """As oslo.messaging reads it: notifications go to
    ``[oslo_messaging_notifications] transport_url``, calls to ``[DEFAULT]``'s."""
    conf = config_file(tmp_path, f"""
[DEFAULT]
transport_url = {UNREACHABLE}
[oslo_messaging_notifications]
transport_url = {rabbitmq}
""")
    try:
        sent = run("notify", "ev", "--topic", topic, "--allow-unroutable", "--config-file", conf)
        assert sent.returncode == 0, sent.stderr
        assert queue_exists(f"{topic}.info")
        assert_bad_input(run("call", topic, "m", "--config-file", conf),
                         "cannot reach the broker")
    finally:
        delete_queues(rabbitmq, f"{topic}.info")


def test_config_file_without_oslo_config_says_what_to_install(tmp_path: Path) -> None:
    fake = tmp_path / "oslo_config"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'oslo_config'\", name='oslo_config')\n")
    conf = config_file(tmp_path, "[DEFAULT]\ntransport_url = memory://x\n")
    done = run("url", "--config-file", conf, env={"PYTHONPATH": str(tmp_path)})
    assert_bad_input(done, "--config-file needs oslo.config, which is not installed")
    assert "pip install 'dovecote[oslo]'" in done.stderr


def test_a_bad_config_file_is_bad_input(tmp_path: Path) -> None:
    assert_bad_input(run("url", "--config-file", str(tmp_path / "nope.conf")), "no such file")
    broken = config_file(tmp_path, "transport_url = memory://\n[DEFAULT\n")
    assert_bad_input(run("url", "--config-file", broken), f"--config-file {broken}: ")
    wrong = config_file(tmp_path, "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = many\n")
    assert_bad_input(run("url", "rabbit://h/", "--config-file", wrong), "prefetch_count")


LOCAL_CHECKS = [
    (["call", UNREACHABLE, "t", "m", "--version", "1.x"],
     "--version '1.x' is not an API version: write MAJOR.MINOR"),
    (["cast", UNREACHABLE, "t", "m", "--version", "v2"], "--version 'v2' is not an API version"),
    (["servers", UNREACHABLE, "t", "--timeout", "0"], "--timeout must be more than 0"),
    (["describe", UNREACHABLE, "t", "--timeout", "inf"], "--timeout must be more than 0"),
    (["dead-letters", "take", UNREACHABLE, "t", "loud"], "unknown priority 'loud'"),
    (["listen", UNREACHABLE, "--priority", "loud"], "invalid choice: 'loud'"),
    (["notify", UNREACHABLE, "ev", "--priority", "loud"], "invalid choice: 'loud'"),
    (["ping", UNREACHABLE, "t", "--count", "0"], "--count must be more than 0"),
]


@pytest.mark.parametrize(("argv", "says"), LOCAL_CHECKS,
                         ids=[f"{a[0]}-{a[-1]}" for a, _ in LOCAL_CHECKS])
def test_the_commands_own_input_is_checked_before_connecting(argv: list[str], says: str) -> None:
    """Against a broker that cannot be reached, the mistake in the command
    line is what is reported: nothing was tried before the check."""
    done = run(*argv, timeout=15)
    assert_bad_input(done, says)
    assert "cannot reach" not in done.stderr


@pytest.mark.parametrize("priority", ["warning", "WARNING", "Warn", "sample"])
def test_notify_accepts_every_priority_notifier_does(priority: str) -> None:
    """Accepted locally: the next thing that fails is the broker."""
    assert_bad_input(run("notify", UNREACHABLE, "ev", "--priority", priority, timeout=15),
                     "cannot reach the broker")


def test_url_builds_the_transport_and_shows_its_warnings() -> None:
    done = run("url", "rabbit://guest:guest@127.0.0.1:5672/?prefetch_cont=5")
    assert done.returncode == 0, done.stderr
    assert "transport.unknown_options" in done.stderr
    assert "prefetch_cont" in done.stderr
    assert "check their spelling" in done.stderr
    scripted = run("url", "rabbit://guest:guest@127.0.0.1:5672/?prefetch_cont=5", "--json")
    warned = [json.loads(line) for line in scripted.stderr.splitlines()]
    assert warned[0]["options"] == ["prefetch_cont"]
    for other in ("amqp1://guest:guest@127.0.0.1:5672/?prefech=5", "memory://?prefech=5"):
        done = run("url", other, "--json")
        assert done.returncode == 0, done.stderr
        assert [json.loads(line)["options"] for line in done.stderr.splitlines()] == [["prefech"]]
    assert_bad_input(run("url", "rabbit://h/?prefetch_count=-3"), "must not be negative")
    assert_bad_input(run("url", "rabbit://h/?ssl=maybe"), "is not a boolean")
    clean = run("url", "rabbit://guest:guest@127.0.0.1:5672/?prefetch_count=5")
    assert (clean.returncode, clean.stderr) == (0, "")


@pytest.mark.parametrize("argv", [["--help"], ["call", "--help"], ["logs", "{log}"],
                                  ["logs", "{log}", "--json"], ["url", "memory://x"]])
def test_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    """``dovecote ... | head``: the reader is gone before the first write.
    Status 0 (the reader had what it wanted), nothing on stderr."""
    log = tmp_path / "big.log"
    log.write_text("".join(json.dumps({"event": f"e{n}", "timestamp": "2026-01-01T00:00:00"})
                           + "\n" for n in range(5000)))
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([*DOVECOTE, *[a.format(log=log) for a in argv]], stdout=writer,
                              stderr=subprocess.PIPE, text=True, timeout=30, check=False)
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")


# -- against the test RabbitMQ -----------------------------------------------------------
@pytest.fixture(scope="module", params=["rabbit", "amqp1"])
def bus(request: pytest.FixtureRequest, rabbitmq: str) -> str:
    return rabbitmq if request.param == "rabbit" else AMQP1_URL


class Fleet:
    """Two ``dovecote serve`` processes of :mod:`cli_catalog` on one topic."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.topic = f"ops-{os.urandom(6).hex()}"
        env = {"PYTHONPATH": os.pathsep.join([str(CLI_TESTS), os.environ.get("PYTHONPATH", "")])}
        self.servers = {name: Background("serve", url, self.topic, "cli_catalog:ENDPOINTS",
                                         "--server", name, "--workers", "2", env=env)
                        for name in ("s1", "s2")}
        for server in self.servers.values():
            server.stderr_line(lambda line: line.startswith("serving "))
        self.pids = {name: server.process.pid for name, server in self.servers.items()}


@pytest.fixture(scope="module")
def fleet(bus: str) -> Iterator[Fleet]:
    fleet = Fleet(bus)
    yield fleet
    for server in fleet.servers.values():  # both stop at once (a second SIGTERM while
        server.process.send_signal(signal.SIGTERM)  # stopping would kill: not stop())
    for server in fleet.servers.values():
        assert server.process.wait(20) == 0, server.rest_of_stderr()
    delete_queues(bus.replace("amqp1", "rabbit"), fleet.topic, f"{fleet.topic}.s1",
                  f"{fleet.topic}.s2")


def test_servers_lists_every_server_of_the_topic(fleet: Fleet) -> None:
    done = run("servers", fleet.url, fleet.topic, "--timeout", "1", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert (found["topic"], found["unidentified"]) == (fleet.topic, 0)
    assert [s["server"] for s in found["servers"]] == ["s1", "s2"]
    for server in found["servers"]:
        name = server["server"]
        assert (server["host"], server["pid"], server["version"]) == (
            HOST, fleet.pids[name], VERSION)
        assert 0 < server["uptime_s"] < 600
        assert len(server["listeners"]) == 1
        assert server["listeners"][0]["target"] == f"<Target topic={fleet.topic}, server={name}>"
        assert ":guest@" not in server["listeners"][0]["transport"]
    human = run("servers", fleet.url, fleet.topic, "--timeout", "1")
    header, *rows = human.stdout.splitlines()
    assert header.split() == ["SERVER", "HOST", "PID", "UPTIME", "VERSION", "LISTENERS"]
    assert [row.split()[:3] for row in rows] == [
        ["s1", HOST, str(fleet.pids["s1"])], ["s2", HOST, str(fleet.pids["s2"])]]


def test_servers_of_a_topic_with_no_queue_fail_at_once(bus: str, topic: str) -> None:
    began = time.monotonic()
    done = run("servers", bus, topic, "--timeout", "10")
    assert time.monotonic() - began < 8
    assert done.returncode == 1
    assert done.stderr == (f"dovecote: no server of topic {topic}: nothing receives its "
                           "messages (check the topic and --server, or start the server)\n")


def test_describe_shows_each_endpoints_methods_and_parameters(fleet: Fleet) -> None:
    done = run("describe", fleet.url, fleet.topic, "--server", "s2", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["server"], answer["pid"]) == ("s2", fleet.pids["s2"])
    endpoints = {e["endpoint"]: e for e in answer["endpoints"]}
    assert set(endpoints) == {"Compute", "Echo"}  # the control endpoints are not listed
    compute = endpoints["Compute"]
    assert (compute["namespace"], compute["version"], compute["actor"]) == ("compute", "2.3",
                                                                           False)
    methods = {m["name"]: m for m in compute["methods"]}
    assert set(methods) == {"reboot", "resize"}  # nothing private
    assert methods["resize"]["parameters"] == [
        {"name": "instance", "required": True}, {"name": "flavor", "required": False},
        {"name": "extra", "required": False, "any": True}]
    assert methods["resize"]["summary"] == "Resize an instance to another flavor."
    assert methods["reboot"]["summary"] is None
    assert (endpoints["Echo"]["namespace"], endpoints["Echo"]["version"]) == (None, "1.0")
    for hidden in ("_secret", "password", "mangled", "small", "rest of the docstring"):
        assert hidden not in done.stdout
    human = run("describe", fleet.url, fleet.topic)
    lines = human.stdout.splitlines()
    assert re.fullmatch(rf"{fleet.topic}\.s[12] \(host {HOST}, pid \d+\) serves:", lines[0])
    assert "Compute: namespace 'compute', version 2.3" in lines
    assert "  resize(instance, flavor=..., **extra)  Resize an instance to another flavor." \
        in lines
    assert "  reboot(instance)" in lines
    assert "Echo: namespace None, version 1.0" in lines


def test_ping_actors_and_events_say_which_server_answered(fleet: Fleet) -> None:
    pinged = json.loads(run("ping", fleet.url, fleet.topic, "--count", "4", "--json").stdout)
    assert set(pinged["servers"]) <= {"s1", "s2"}
    assert pinged["pids"] == [fleet.pids[name] for name in pinged["servers"]]
    assert pinged["hosts"] == [HOST] * 4
    actors = run("actors", fleet.url, fleet.topic)
    assert actors.returncode == 0, actors.stderr
    first = actors.stdout.splitlines()[0]
    found = re.fullmatch(rf"actors of {fleet.topic}\.(s[12]) \(host {HOST}, pid (\d+)\):", first)
    assert found is not None, first
    assert int(found.group(2)) == fleet.pids[found.group(1)]
    assert f"server={found.group(1)}>" in actors.stdout  # its listener's target
    events = run("events", fleet.url, fleet.topic, "--json", "--limit", "1000")
    servers = {json.loads(line).get("server") for line in events.stdout.splitlines()}
    assert len(servers) == 1
    assert servers <= {"s1", "s2"}
    shown = run("events", fleet.url, fleet.topic, "--limit", "1").stdout.splitlines()[0]
    assert re.fullmatch(rf"events of {fleet.topic}\.s[12] \(host {HOST}, pid \d+\):", shown)


def test_cast_and_notify_to_no_queue_say_so(bus: str, topic: str) -> None:
    rabbit = bus.replace("amqp1", "rabbit")
    try:
        done = run("cast", bus, topic, "m", "--fanout")  # not --fanout: test_cli_hardening
        assert done.returncode == 1
        assert f"no server of topic {topic}" in done.stderr
        allowed = run("cast", bus, topic, "m", "--allow-unroutable")
        assert (allowed.returncode, allowed.stdout) == (0, f"cast m to {topic}\n")
        refused = run("notify", bus, "ev", "--topic", topic)
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"dovecote: no queue {topic}.info: no listener ")
        assert "--allow-unroutable" in refused.stderr
        assert not queue_exists(f"{topic}.info")  # nothing was sent, nothing declared
        sent = run("notify", bus, "ev", "--topic", topic, "--priority", "WARNING",
                   "--allow-unroutable")
        assert (sent.returncode, sent.stdout) == (0, f"sent ev to {topic}.warn\n")
        assert queue_exists(f"{topic}.warn")  # kept for a listener to come
    finally:
        delete_queues(rabbit, f"{topic}.warn", f"{topic}.info")


def test_serve_json_writes_only_json_lines(rabbitmq: str, topic: str) -> None:
    server = Background("serve", rabbitmq, topic, "cli_service:endpoints", "--server", "s1",
                        "--json")
    try:
        ready = json.loads(server.stderr_line(lambda line: "cli.serving" in line))
        assert (ready["topic"], ready["server"], ready["level"]) == (topic, "s1", "info")
        assert ready["message"].startswith(f"serving {topic}.s1 on rabbit://guest:****@")
        assert server.stop(signal.SIGTERM) == 0
        records = [json.loads(line) for line in server.rest_of_stderr()]  # every line
        assert {"server.started", "cli.serving", "server.stopped"} <= {
            r["event"] for r in records}
    finally:
        delete_queues(rabbitmq, topic, f"{topic}.s1")


# -- memory://, in this process ------------------------------------------------------------
class Exposing:
    """Under :class:`NotHidden` only ``shown`` may be called."""

    def shown(self, ctxt: Any, a: int) -> int:
        return a

    def hidden(self, ctxt: Any) -> None:
        return None

    def _private(self, ctxt: Any) -> None:
        return None


class NotHidden(dovecote.DefaultRPCAccessPolicy):
    """The default policy, and no method named ``hidden`` either."""

    def is_allowed(self, endpoint: Any, method: str) -> bool:
        return super().is_allowed(endpoint, method) and method != "hidden"


class Worker(pykka.ThreadingActor):
    """An endpoint actor."""

    def work(self, ctxt: Any, job: str, *, urgent: bool = False) -> str:
        """Do a job."""
        return job


class OldControl:
    """A control endpoint of before 1.1 (no ``info``, ``describe``, ``who``)."""

    target = dovecote.Target(namespace="dovecote.control", version="1.0")

    def ping(self, ctxt: Any) -> str:
        return "pong"


@pytest.fixture
def memory_fleet(unique: str) -> Iterator[str]:
    url = f"memory://ops-{unique}"
    transport = dovecote.get_transport(url)
    worker = Worker.start()
    servers = [
        dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="a"), [Exposing()],
                                access_policy=NotHidden()),
        dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="b"), [worker]),
        dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="old"),
                                [OldControl()], control=False),
    ]
    try:
        with running(servers[0]), running(servers[1]), running(servers[2]):
            yield url
    finally:
        worker.stop()
        transport.cleanup()


def test_servers_and_describe_on_memory(memory_fleet: str) -> None:
    url = memory_fleet
    status, out, err = in_process("servers", url, "t", "--timeout", "0.5", "--json")
    assert status == 0, err
    found = json.loads(out)
    assert [s["server"] for s in found["servers"]] == ["a", "b"]
    assert {s["pid"] for s in found["servers"]} == {os.getpid()}
    assert found["unidentified"] == 1  # "old" answered, without info
    status, out, err = in_process("servers", url, "t", "--timeout", "0.5")
    assert "1 more server(s) of t answered without dovecote's control endpoint" in err
    status, out, _ = in_process("describe", url, "t", "--server", "a", "--json")
    (exposing,) = json.loads(out)["endpoints"]
    assert [m["name"] for m in exposing["methods"]] == ["shown"]  # the access policy's choice
    status, out, _ = in_process("describe", url, "t", "--server", "b", "--json")
    (actor,) = json.loads(out)["endpoints"]
    assert (actor["endpoint"], actor["actor"]) == ("Worker", True)
    assert actor["methods"] == [{"name": "work", "summary": "Do a job.", "parameters": [
        {"name": "job", "required": True}, {"name": "urgent", "required": False}]}]
    status, _, err = in_process("describe", url, "t", "--server", "old")
    assert status == 2
    assert "does not serve the control endpoint 1.1" in err
    status, out, _ = in_process("ping", url, "t", "--server", "old", "--count", "1")
    assert status == 0
    assert out.startswith("pong from t.old: ")


def test_servers_wait_no_longer_than_the_timeout_on_memory(memory_fleet: str) -> None:
    began = time.monotonic()
    assert in_process("servers", memory_fleet, "t", "--timeout", "0.3")[0] == 0
    assert time.monotonic() - began < 2


def test_python_dash_m_runs_the_command_too() -> None:
    done = subprocess.run([sys.executable, "-m", "dovecote.cli._main", "--version"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout == f"dovecote {VERSION}\n"


class HostileControl:
    """A control endpoint 1.1 answering with whatever ``value`` holds, where
    text or anything else is expected, as a hostile or broken server could."""

    target = dovecote.Target(namespace="dovecote.control", version="1.1")

    def __init__(self) -> None:
        self.value: Any = ""

    def ping(self, ctxt: Any, who: bool = False) -> Any:
        return {"pong": True, "server": self.value, "host": self.value, "pid": self.value}

    def info(self, ctxt: Any) -> Any:
        value = self.value
        return {"server": str(value), "host": value, "pid": value, "version": value,
                "uptime_s": value, "listeners": [{"target": value, "transport": value}, value]}

    def describe(self, ctxt: Any) -> Any:
        value = self.value
        method = {"name": value, "summary": value,
                  "parameters": [{"name": value, "required": False}, {"any": True}, value]}
        return {"server": value, "endpoints": [
            {"endpoint": value, "namespace": value, "version": value, "actor": value,
             "legacy_namespaces": [value], "methods": [method, value]}, value]}


@pytest.mark.parametrize("value", [HOSTILE, "\r\n\u202e", 7, None, [HOSTILE], {"a": HOSTILE}])
def test_what_a_server_says_about_itself_is_shown_escaped(unique: str, value: Any) -> None:
    """``servers``, ``describe``, ``ping`` and ``actors`` print a hostile or
    broken server's answers on their own lines, escaped: exit status 0 or 1,
    never a traceback or "unexpected"."""
    url = f"memory://hostile-{unique}"
    transport = dovecote.get_transport(url)
    endpoint = HostileControl()
    endpoint.value = value
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic="t", server="s"),
                                     [endpoint], control=False)
    try:
        with running(server):
            outputs = [in_process("servers", url, "t", "--timeout", "0.2"),
                       in_process("describe", url, "t"),
                       in_process("ping", url, "t", "--count", "1")]
    finally:
        transport.cleanup()
    for status, out, err in outputs:
        assert status in (0, 1), (status, out, err)
        assert printable_only(out), repr(out)
        assert printable_only(err), repr(err)
        assert "unexpected" not in err
    assert "\\x1b[2J" in "".join(out for _, out, _ in outputs) or value != HOSTILE


def test_readable_log_lines_keep_a_traceback_on_lines_of_its_own() -> None:
    """``serve`` without ``--json``: each JSON log line as a line for a person,
    a traceback after it as Python prints it, escaped."""
    import io

    from dovecote.cli._main import _Readable

    out = io.StringIO()
    readable = _Readable(out)
    record = {"event": "dispatch.failed", "level": "error", "timestamp":
              "2026-01-01T10:00:00.123456Z", "method": "m\x1b[2J",
              "exception": "Traceback (most recent call last):\n  boom\nValueError: x"}
    text = json.dumps(record) + "\n"
    readable.write(text[:10])
    assert out.getvalue() == ""  # nothing until the line is whole
    readable.write(text[10:] + "not json\n")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("10:00:00.123  error")
    assert "dispatch.failed" in lines[0]
    assert "\\x1b[2J" in lines[0]
    assert lines[1:] == ["Traceback (most recent call last):", "  boom", "ValueError: x",
                         "not json"]
