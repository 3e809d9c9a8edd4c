"""The ``dovecote`` command against what a hostile peer, a typo and a busy
operator bring (issue 20, items 7, 8, 11 and 13): terminal output escaped,
``listen``'s own queue expiring, dead letters read without loops or stray
queues, "no server" at once, and bad numbers and JSON as bad input. The
command runs in a subprocess against the test RabbitMQ (``rabbit://`` and
``amqp1://``); ``memory://`` cases run it in-process (``main``), where the
in-process broker is."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp
import pytest
import structlog
from _rpc_support import PATIENCE, QueueProbe, delete_queues, envelope, running, wait_until
from conftest import AMQP1_URL
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_cli import DOVECOTE, Background, assert_bad_input, dovecote_cli

import dovecote
from dovecote.cli._main import main
from dovecote.drivers._decoding import ERROR_HEADER
from dovecote.drivers.memory import get_broker

pytestmark = pytest.mark.timeout(120)

#: Text a peer might send to a terminal: screen clearing, colours, a carriage
#: return over what was printed, bidi overrides, C1 controls, separators, a
#: lone surrogate.
HOSTILE = "\x1b[2J\x1b[31mEVIL\x1b[0m\rok\u202egnp.exe\x9b31m\u2028x\u0000y\ud800\t\x7f"


def printable_only(text: str) -> bool:
    """Nothing a terminal acts on but the line ends the command writes itself."""
    return all(char.isprintable() or char == "\n" or unicodedata.category(char) == "Zs"
               for char in text)


def in_process(*argv: str) -> tuple[int, str, str]:
    """``main(argv)`` here (for ``memory://``): exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with structlog.testing.capture_logs(), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(params=["rabbit", "amqp1"])
def bus(request: pytest.FixtureRequest, rabbitmq: str) -> str:
    return rabbitmq if request.param == "rabbit" else AMQP1_URL


def queue_exists(name: str) -> bool:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        conn.channel().queue_declare(name, passive=True)
    except amqp.exceptions.NotFound:
        return False
    finally:
        conn.close()
    return True


# -- item 7: terminal output, and listen's own queue ------------------------------------
@pytest.mark.parametrize("scheme", ["rabbit", "amqp1"])
def test_listen_pool_expires_after_a_killed_listen(rabbitmq: str, topic: str,
                                                   scheme: str) -> None:
    """``listen``'s own pool queue carries ``x-expires`` (60 s): one killed with
    SIGKILL, which cannot delete it, leaves it to vanish instead of collecting
    every notification for ever (on either protocol)."""
    url = rabbitmq if scheme == "rabbit" else rabbitmq.replace("rabbit://", "amqp1://", 1)
    listening = Background("listen", url, "--topic", topic)
    ready = listening.stderr_line(lambda line: line.startswith("listening to "))
    pool = ready.split(" in pool ")[1].split()[0]
    assert listening.stop(signal.SIGKILL) == -signal.SIGKILL
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        # Declaring it again with exactly these arguments succeeds only if the
        # queue has them (else PRECONDITION_FAILED: inequivalent arg 'x-expires').
        name, _, consumers = conn.channel().queue_declare(
            pool, durable=False, auto_delete=False, arguments={"x-expires": 60_000})
        assert (name, consumers) == (pool, 0)
    finally:
        conn.close()
        delete_queues(rabbitmq, pool)


def test_listen_escapes_what_a_peer_sends(rabbitmq: str, topic: str) -> None:
    """A notification published raw with control characters in every field: the
    human line shows them escaped, on one line; ``--json`` keeps them exact."""
    human = Background("listen", rabbitmq, "--topic", topic, "--priority", "info")
    scripted = Background("listen", rabbitmq, "--topic", topic, "--priority", "info", "--json")
    human.stderr_line(lambda line: line.startswith("listening to "))
    scripted.stderr_line(lambda line: json.loads(line)["event"] == "cli.listening")
    body = envelope({"message_id": "m-1", "publisher_id": HOSTILE, "event_type": HOSTILE,
                     "priority": "INFO", "payload": {HOSTILE: HOSTILE},
                     "timestamp": HOSTILE})
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        conn.channel().basic_publish(
            amqp.Message(body.encode("utf-8", "surrogatepass"), content_type="application/json",
                         content_encoding="utf-8"),
            exchange="openstack", routing_key=f"{topic}.info")
        line = human.stdout_line()
        seen = json.loads(scripted.stdout_line())
    finally:
        conn.close()
        assert human.stop() == 0
        assert scripted.stop() == 0
        delete_queues(rabbitmq, f"{topic}.info")
    assert printable_only(line), repr(line)
    assert "\\x1b[2J\\x1b[31mEVIL" in line
    assert "publisher=\\x1b[2J" in line
    assert (seen["event_type"], seen["publisher_id"]) == (HOSTILE, HOSTILE)
    assert seen["payload"] == {HOSTILE: HOSTILE}


class HostileControl:
    """A control endpoint (``dovecote.control`` 1.0) answering with whatever
    ``text`` holds, as a hostile or broken server could."""

    target = dovecote.Target(namespace="dovecote.control", version="1.0")

    def __init__(self) -> None:
        self.text = ""

    def ping(self, ctxt: Any) -> str:
        return self.text

    def actors(self, ctxt: Any) -> list[dict[str, Any]]:
        columns = ["kind", "actor", "target", "alive", "mailbox", "handled", "failed", "urn"]
        return [dict.fromkeys(columns, self.text)]

    def events(self, ctxt: Any, **filters: Any) -> list[dict[str, Any]]:
        text = self.text
        return [{"timestamp": text, "time": 1.0, "level": text, "kind": text, "actor": text,
                 "actor_urn": text, "event": text, "method": text, text or "k": [text]}]

    def fail(self, ctxt: Any) -> None:
        raise type(self.text or "E", (Exception,), {})(self.text)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[tuple[str, HostileControl]]:
    url = f"memory://hostile-{os.urandom(4).hex()}"
    transport = dovecote.get_transport(url)
    endpoint = HostileControl()
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic="t", server="s"), [endpoint], control=False)
    with structlog.testing.capture_logs(), running(server):
        yield url, endpoint
    transport.cleanup()


PEER_TEXT = st.text(st.characters(exclude_categories=()), max_size=24) | st.sampled_from(
    [HOSTILE, "\x1b]0;title\x07", "\r\n", "\u2029", "\x85", "\u200f\u202d"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(text=HOSTILE)
@given(text=PEER_TEXT)
def test_human_output_never_holds_a_control_character(
    hostile_server: tuple[str, HostileControl], tmp_path: Path, text: str,
) -> None:
    """Whatever text a peer sends (a server's events, actors and errors, a dead
    letter's fields and reason, a log line), the human output holds no
    character a terminal acts on besides the command's own line ends; the
    JSON output holds the text exactly."""
    url, endpoint = hostile_server
    endpoint.text = text
    outputs = [
        in_process("events", url, "t", "--server", "s"),
        in_process("actors", url, "t", "--server", "s"),
        in_process("call", url, "t", "fail", "--server", "s", "--timeout", "5", "--namespace",
                   "dovecote.control", "--version", "1.0"),
    ]
    assert json.loads(in_process("events", url, "t", "--server", "s", "--json")[1])[
        "event"] == text
    queue = "notes.error.dead"
    get_broker(url.removeprefix("memory://")).put(
        queue, envelope({"message_id": "m", "publisher_id": text, "event_type": text,
                         "priority": "ERROR", "payload": {text: text}, "timestamp": text}),
        {ERROR_HEADER: text or "r"})
    outputs.append(in_process("dead-letters", "take", url, "notes", "error", "--timeout",
                              "0.05"))
    log = tmp_path / "peer.log"
    log.write_text(json.dumps({"event": text or "e", "actor": text, "timestamp": text,
                               "level": text, text or "k": text}) + "\n")
    outputs.append(in_process("logs", str(log)))
    from dovecote.cli._bus import notification_line  # what `listen` prints, line by line
    from dovecote.cli._support import show

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        show(notification_line("info", text, text, {text: [text]}, {"timestamp": text}))
    outputs.append((0, shown.getvalue(), ""))
    for status, out, err in outputs:
        assert status in (0, 1), (status, out, err)
        assert printable_only(out), repr(out)
        assert printable_only(err), repr(err)
        assert len(err.splitlines()) <= 1


# -- item 8: dead letters ----------------------------------------------------------------
class Flaky:
    """Fails (so each notification is parked) until ``fail`` is cleared."""

    def __init__(self) -> None:
        self.fail = True
        self.handled: list[Any] = []

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("still broken")
        self.handled.append(payload)


def park(bus: str, topic: str, count: int) -> tuple[Any, Flaky, QueueProbe]:
    """A listener on ``topic`` whose endpoint fails, and ``count`` notifications
    it parked on ``<topic>.error.dead``."""
    transport = dovecote.get_transport(bus)
    endpoint = Flaky()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic=topic)], [endpoint])
    listener.start()
    notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
    for n in range(count):
        notifier.error({}, "x.failed", {"n": n})
    probe = QueueProbe(dovecote.get_transport(bus.replace("amqp1", "rabbit")))
    assert wait_until(lambda: _depth(probe, f"{topic}.error.dead") == count)
    return listener, endpoint, probe


def _depth(probe: QueueProbe, queue: str) -> int:
    try:
        return probe.depth(queue)
    except amqp.exceptions.NotFound:
        return -1


def test_replay_ends_while_the_endpoint_still_fails(bus: str, topic: str) -> None:
    """The endpoint still fails, so each replayed notification is parked again:
    replay sends what was parked when it started, says so and stops (it used to
    replay its own dead letters for ever); ``--limit`` bounds it further."""
    with structlog.testing.capture_logs():
        listener, endpoint, probe = park(bus, topic, 3)
        try:
            began = time.monotonic()
            done = dovecote_cli("dead-letters", "replay", bus, topic, "error", timeout=30)
            took = time.monotonic() - began
            print(f"replay with the endpoint still failing: {took:.2f} s; {done.stdout!r}")
            assert done.returncode == 0, done.stderr
            assert done.stdout.splitlines()[0] == f"replayed 3 notification(s) to {topic}.error"
            assert wait_until(lambda: _depth(probe, f"{topic}.error.dead") == 3)  # parked again
            endpoint.fail = False
            limited = dovecote_cli("dead-letters", "replay", bus, topic, "error", "--limit",
                                   "2", "--json")
            assert json.loads(limited.stdout) == {"replayed": 2, "to": f"{topic}.error",
                                                  "undecodable": 0}
            assert wait_until(lambda: len(endpoint.handled) == 2)
            assert _depth(probe, f"{topic}.error.dead") == 1
        finally:
            listener.stop()
            listener.wait(PATIENCE)
            probe.close()
            delete_queues(bus.replace("amqp1", "rabbit"), f"{topic}.error",
                          f"{topic}.error.dead")


def test_peek_reads_dead_letters_and_leaves_them(bus: str, topic: str) -> None:
    """``peek`` (or ``list``) prints what is parked and leaves it there; ``take``
    removes it."""
    with structlog.testing.capture_logs():
        listener, _, probe = park(bus, topic, 2)
        listener.stop()
        listener.wait(PATIENCE)
        try:
            for action in ("peek", "list"):
                done = dovecote_cli("dead-letters", action, bus, topic, "error")
                assert done.returncode == 0, done.stderr
                lines = done.stdout.splitlines()
                assert len(lines) == 2
                assert all(line.startswith("x.failed  redeliveries=") for line in lines)
                assert "still broken" in lines[0]
                assert wait_until(lambda: _depth(probe, f"{topic}.error.dead") == 2)
            taken = dovecote_cli("dead-letters", "take", bus, topic, "error", "--limit", "1",
                                 "--json")
            assert len(taken.stdout.splitlines()) == 1
            left = dovecote_cli("dead-letters", "peek", bus, topic, "error", "--json")
            assert [json.loads(line)["message"]["event_type"]
                    for line in left.stdout.splitlines()] == ["x.failed"]
        finally:
            probe.close()
            delete_queues(bus.replace("amqp1", "rabbit"), f"{topic}.error",
                          f"{topic}.error.dead")


def test_a_mistyped_topic_creates_no_dead_letter_queue(bus: str, topic: str) -> None:
    """A topic with no dead-letter queue is "no dead letters", for every action,
    and no queue is declared for it (a typo used to leave a durable one)."""
    typo = f"{topic}-typo"
    try:
        for action in ("take", "peek", "replay"):
            done = dovecote_cli("dead-letters", action, bus, typo, "info")
            assert done.returncode == 0, done.stderr
            assert done.stdout == f"no dead letters for {typo}.info\n"
            assert not queue_exists(f"{typo}.info.dead")
    finally:
        delete_queues(bus.replace("amqp1", "rabbit"), f"{typo}.info.dead")


def test_an_unknown_priority_is_bad_input(rabbitmq: str, topic: str) -> None:
    try:
        for action in ("take", "peek", "replay"):
            assert_bad_input(dovecote_cli("dead-letters", action, rabbitmq, topic, "loud"),
                             "unknown priority 'loud': one of audit, debug, info, warn")
        assert not queue_exists(f"{topic}.loud.dead")
        done = dovecote_cli("dead-letters", "take", rabbitmq, topic, "WARNING")
        assert done.stdout == f"no dead letters for {topic}.warn\n"
    finally:
        delete_queues(rabbitmq, f"{topic}.loud.dead")


# -- item 11: no server ----------------------------------------------------------------
NO_SERVER = [
    ["ping", "{url}", "{topic}", "--server", "s1"],
    ["actors", "{url}", "{topic}", "--server", "s1"],
    ["events", "{url}", "{topic}", "--server", "s1"],
    ["call", "{url}", "{topic}", "echo"],
    ["cast", "{url}", "{topic}", "remember", "--server", "s1"],
]


@pytest.mark.parametrize("kind", ["rabbit", "amqp1", "memory"])
@pytest.mark.parametrize("argv", NO_SERVER, ids=[a[0] for a in NO_SERVER])
def test_no_server_fails_at_once(request: pytest.FixtureRequest, kind: str, argv: list[str],
                                 topic: str) -> None:
    """A target no server ever listened on: "no server" at once, exit status 1
    (not a wait for the 30 s timeout, nor a cast reported sent)."""
    url = {"rabbit": "rabbit://guest:guest@127.0.0.1:5672/", "amqp1": AMQP1_URL,
           "memory": "memory://nobody"}[kind]
    if kind != "memory":
        request.getfixturevalue("rabbitmq")
    began = time.monotonic()
    done = dovecote_cli(*[a.format(url=url, topic=topic) for a in argv], timeout=15)
    took = time.monotonic() - began
    assert done.returncode == 1, (done.stdout, done.stderr)
    where = "" if argv[0] == "call" else " s1"
    assert done.stderr == (f"dovecote: no server{where} of topic {topic}: nothing receives "
                           "its messages (check the topic and --server, or start the server)\n")
    assert took < 5, took


def test_an_unbound_queue_is_no_server_on_rabbit(rabbitmq: str, topic: str) -> None:
    """The queue exists but nothing routes to it (it is bound to no exchange):
    the call is published mandatory, the broker returns it, "no server"."""
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        conn.channel().queue_declare(f"{topic}.s1", durable=False, auto_delete=False)
        began = time.monotonic()
        done = dovecote_cli("ping", rabbitmq, topic, "--server", "s1", "--timeout", "20",
                            timeout=15)
        assert time.monotonic() - began < 5
        assert done.returncode == 1
        assert f"no server s1 of topic {topic}" in done.stderr
    finally:
        conn.close()
        delete_queues(rabbitmq, f"{topic}.s1")


# -- item 13: bad numbers and JSON ----------------------------------------------------
DEEP = "[" * 100_000
BAD_NUMBERS = [
    (["call", "rabbit://guest:guest@127.0.0.1:5672/", "t", "m", "--timeout", "inf"],
     "--timeout must be more than 0 and at most 86400 seconds, not inf"),
    (["call", "memory://x", "t", "m", "--timeout", "nan"], "not nan"),
    (["call", "memory://x", "t", "m", "--timeout", "-1"], "--timeout must be more than 0"),
    (["ping", "memory://x", "t", "--timeout", "0"], "not 0.0"),
    (["events", "memory://x", "t", "--timeout", "1e999"], "not inf"),
    (["actors", "memory://x", "t", "--timeout", "1e6"], "not 1000000.0"),
    (["dead-letters", "take", "memory://x", "t", "info", "--timeout", "inf"], "not inf"),
    (["dead-letters", "peek", "memory://x", "t", "info", "--limit", "0"],
     "--limit must be more than 0"),
    (["call", "memory://x", "t", "m", "--args", DEEP], "--args nests more than 200 levels"),
    (["call", "memory://x", "t", "m", "--args", '{"a":' * 500 + "1" + "}" * 500],
     "--args nests more than 200 levels"),
    (["cast", "memory://x", "t", "m", "--ctxt", DEEP], "--ctxt nests more than 200 levels"),
    (["notify", "memory://x", "e", "--payload", DEEP], "--payload nests more than 200"),
    (["call", "rabbit://guest:guest@127.0.0.1:5672/", "t", "m", "--args", '{"a": NaN}'],
     "--args is not valid JSON (NaN is not a JSON number)"),
    (["call", "memory://x", "t", "m", "--args", '{"a": 1e999}'],
     "--args is not valid JSON (1e999 is too large for a number)"),
    (["call", "memory://x", "t", "m", "--args", '{"a": ' + "9" * 5000 + "}"],
     "--args is not valid JSON"),
]


@pytest.mark.parametrize(("argv", "says"), BAD_NUMBERS,
                         ids=[f"{a[0]}-{a[-1][:12]}" for a, _ in BAD_NUMBERS])
def test_bad_numbers_and_json_are_bad_input(argv: list[str], says: str) -> None:
    """Exit status 2 with one line at once: never a wait for ever (``inf``), an
    error blamed on the server ("raised OverflowError") or "unexpected"."""
    done = dovecote_cli(*argv, timeout=15)
    assert_bad_input(done, says)
    assert len(done.stderr.splitlines()) == 1
    assert "unexpected" not in done.stderr


ARGS_TEXT = (
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
    | st.integers(1, 100_000).map(lambda n: "[" * n)
    | st.integers(150, 5000).map(lambda n: "[" * n + "]" * n)
    | st.integers(150, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n)
    | st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                   lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                   max_leaves=8).map(json.dumps)
    | st.sampled_from(["NaN", "-Infinity", "1e999", "9" * 5000, '{"": 1}', '{"ctxt": 1}',
                       "\ufeff{}", "{}\x00"])
)


@settings(max_examples=60, deadline=None)
@example(args=DEEP)
@example(args='{"a": NaN}')
@given(args=ARGS_TEXT)
def test_any_args_text_gives_a_clear_exit_status(args: str) -> None:
    """Whatever ``--args`` holds: exit status 0, 1 or 2, never a traceback or
    "unexpected"; bad input is one line."""
    status, _out, err = in_process("call", "memory://args-fuzz", "t", "m", f"--args={args}",
                                  "--timeout", "1")
    assert status in (1, 2), (status, err)  # no server of t on memory://args-fuzz
    assert "Traceback" not in err
    assert "unexpected" not in err
    assert len(err.splitlines()) == 1, err
    if status == 1:
        assert "no server of topic t" in err



def test_listen_stops_when_its_reader_goes(rabbitmq: str, topic: str) -> None:
    """``listen | head -1``: once stdout is gone, ``listen`` stops by itself and
    parks nothing (a printer that raised used to dead-letter each copy it
    failed to print on the real ``<topic>.info.dead``)."""
    listening = subprocess.Popen(
        [*DOVECOTE, "listen", rabbitmq, "--topic", topic, "--priority", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listening.stderr is not None
        assert listening.stderr.readline().startswith("listening to ")
        assert dovecote_cli("notify", rabbitmq, "first", "--topic", topic,
                            "--allow-unroutable").returncode == 0
        assert listening.stdout is not None
        assert "first" in listening.stdout.readline()
        listening.stdout.close()  # as `head -1` does
        for n in range(3):
            assert dovecote_cli("notify", rabbitmq, f"more-{n}", "--topic", topic).returncode == 0
        assert listening.wait(PATIENCE) == 0
        assert not queue_exists(f"{topic}.info.dead")
    finally:
        if listening.poll() is None:
            listening.kill()
            listening.wait()
        delete_queues(rabbitmq, f"{topic}.info", f"{topic}.info.dead")
