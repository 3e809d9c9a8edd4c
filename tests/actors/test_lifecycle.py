"""Lifecycle and fairness on every transport, the way applications break them:
a slow call among fast ones, batches, listeners removed or crashing while
their messages are being handled, endpoint actors stopped with requests
queued, the blocking executor's thread going on (or being interrupted with
Ctrl+C), a transport cleaned up under a running server, pykka's stop_all, and
competing consumers. Every test counts (handled once, lost none) and ends with
``stop()``/``wait()`` completing."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import structlog
from _rpc_support import PATIENCE, Gate, Recorder, delete_queues, running, serve, wait_until
from test_notifications import Endpoint, listening, notification_queues
from test_server_runtime import FaultyDriver, faulty  # noqa: F401 - a fixture

import dovecote
from dovecote import Target

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_deaths")]


@pytest.fixture(autouse=True)
def _forget_queues(request: pytest.FixtureRequest, topic: str) -> Iterator[None]:
    url = (request.getfixturevalue("transport_url")
           if "transport_url" in request.fixturenames else "memory://")
    yield
    delete_queues(url, topic, f"{topic}.s1", *notification_queues(topic), f"pool_{topic}")


def _client(transport: dovecote.Transport, topic: str, **kwargs: Any) -> dovecote.RPCClient:
    kwargs.setdefault("timeout", PATIENCE)
    return dovecote.get_rpc_client(transport, Target(topic=topic), **kwargs)


class Api(Gate):
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


# -- fairness ------------------------------------------------------------------------------


def test_fast_calls_never_wait_behind_a_slow_one(transport: dovecote.Transport,
                                                  topic: str) -> None:
    api = Api()
    with serve(transport, Target(topic=topic, server="s1"), [api], max_workers=4):
        client = _client(transport, topic)
        slow = client.call_async({}, "hold", tag="slow")
        assert api.entered.wait_for(1) == ["slow"]
        fast = [client.call_async({}, "echo", value=n) for n in range(6)]
        assert [f.get(timeout=PATIENCE) for f in fast] == list(range(6))
        api.open()
        assert slow.get(timeout=PATIENCE) == "slow"


def test_batch_size_bounds_every_batch_even_without_a_timeout(
    transport: dovecote.Transport, topic: str,
) -> None:
    got = Recorder()

    class Batches:
        def info(self, messages: list[dict[str, Any]]) -> None:
            got.add(len(messages))

    notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
    for n in range(40):
        notifier.info({}, "e", n)  # waiting at the broker before the listener starts
    with listening(transport, [Target(topic=topic)], [Batches()], batch=True, batch_size=5,
                   batch_timeout=None):
        assert got.wait_for(8) == [5] * 8


#: The option that limits a pool member to one unacknowledged notification, where the
#: transport has one: a member holding one then takes no more, so the rest go to the other.
_ONE_AT_A_TIME = {"rabbit": "prefetch_count=1", "rabbit-tls": "prefetch_count=1",
                  "redis": "prefetch_count=1", "amqp1": "prefetch=1", "amqp1-tls": "prefetch=1"}


def test_competing_consumers_share_a_burst(
    request: pytest.FixtureRequest, transport_url: str, topic: str,
) -> None:
    """Two members of one pool, 40 notifications at once: both get some, each
    notification is handled once (as on RabbitMQ, so also on ``memory://`` and Redis).

    Each member holds its first notification until the other has one, so the
    outcome does not hang on which member's poller is quicker (on Redis the
    pollers race for each message, and a loaded machine let one drain a burst).
    """
    option = _ONE_AT_A_TIME.get(request.node.callspec.params["transport_url"])
    url = transport_url if option is None else (
        f"{transport_url}{'&' if '?' in transport_url else '?'}{option}")
    both = threading.Barrier(2)

    class Holding(Endpoint):
        def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
                 payload: Any, metadata: dict[str, Any]) -> None:
            first_one = not self.recorder.items
            super().info(ctxt, publisher_id, event_type, payload, metadata)
            if first_one:
                both.wait(PATIENCE)  # raises (and fails the count) when the other gets none

    first, second = Holding(), Holding()
    targets = [Target(topic=topic)]
    transport = dovecote.get_transport(url)
    try:
        with listening(transport, targets, [first], pool=f"pool_{topic}"), \
                listening(transport, targets, [second], pool=f"pool_{topic}"):
            notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
            for n in range(40):
                notifier.info({}, "e", n)
            assert wait_until(lambda: len(first.recorder) + len(second.recorder) >= 40)
    finally:
        transport.cleanup()
    payloads = [s.payload for s in first.recorder.items + second.recorder.items]
    assert sorted(payloads) == list(range(40))
    assert first.recorder.items
    assert second.recorder.items


# -- draining the same way whatever stops a listener ---------------------------------------------


class SlowNotes:
    """Holds each notification until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = Recorder()
        self.handled = Recorder()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.entered.add(payload)
        assert self.gate.wait(PATIENCE)
        self.handled.add(payload)


def test_remove_listener_finishes_what_it_took(transport: dovecote.Transport,
                                               topic: str) -> None:
    notes = SlowNotes()
    listener = dovecote.get_notification_listener(transport, [], [notes])
    handle = listener.listen(transport, Target(topic=topic))
    with running(listener):
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
        notifier.info({}, "e", "taken")
        assert notes.entered.wait_for(1) == ["taken"]
        listener.remove_listener(handle)
        notes.gate.set()
        assert notes.handled.wait_for(1) == ["taken"]
        # another listener on the same queue gets nothing again: it was acknowledged
        listener.listen(transport, Target(topic=topic))
        notifier.info({}, "e", "next")
        assert notes.handled.wait_for(2) == ["taken", "next"]
    assert notes.handled.items == ["taken", "next"]


def test_a_crashed_listener_finishes_what_it_took(faulty: dovecote.Transport,  # noqa: F811
                                                  unique: str, topic: str) -> None:
    notes = SlowNotes()
    with structlog.testing.capture_logs() as logs, \
            listening(faulty, [Target(topic=topic)], [notes]):
        notifier = dovecote.Notifier(faulty, publisher_id="p", topics=[topic])
        notifier.info({}, "e", "taken")
        assert notes.entered.wait_for(1) == ["taken"]
        FaultyDriver.FAILURES[unique] = 1  # its next poll fails: the listener crashes
        assert wait_until(lambda: any(e["event"] == "listener.restarting" for e in logs))
        notes.gate.set()
        assert notes.handled.wait_for(1) == ["taken"]
        notifier.info({}, "e", "next")
        assert notes.handled.wait_for(2) == ["taken", "next"]
    assert notes.handled.items == ["taken", "next"]  # not handled twice


def test_a_healthy_run_resets_the_restart_backoff(
    faulty: dovecote.Transport, unique: str, topic: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dovecote.actors import _dispatcher

    monkeypatch.setattr(_dispatcher, "BACKOFF_RESET", 0.3)
    with structlog.testing.capture_logs() as logs, \
            serve(faulty, Target(topic=topic, server="s1"), [Api()]):
        client = _client(faulty, topic)
        FaultyDriver.FAILURES[unique] = 2
        assert wait_until(lambda: FaultyDriver.FAILURES[unique] == 0)
        assert client.call({}, "echo", value=1) == 1
        threading.Event().wait(0.5)  # a healthy run, longer than BACKOFF_RESET
        FaultyDriver.FAILURES[unique] = 1
        assert wait_until(lambda: FaultyDriver.FAILURES[unique] == 0)
        assert client.call({}, "echo", value=2) == 2
    delays = [e["delay_s"] for e in logs
              if e["event"] == "listener.restarting" and e.get("actor") == "DispatcherActor"]
    assert delays == [0.1, 0.2, 0.1]


# -- endpoint actors stopped by the application ------------------------------------------------


class Holder(pykka.ThreadingActor):
    def __init__(self, gate: threading.Event, entered: Recorder) -> None:
        super().__init__()
        self.gate = gate
        self.entered = entered

    def hold(self, ctxt: Any, tag: Any) -> Any:
        self.entered.add(tag)
        self.gate.wait(PATIENCE)
        return tag

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.hold(ctxt, payload)


def test_requests_queued_for_a_stopped_endpoint_actor_are_answered(
    transport: dovecote.Transport, topic: str,
) -> None:
    gate, entered = threading.Event(), Recorder()
    actor = Holder.start(gate, entered)
    with serve(transport, Target(topic=topic, server="s1"), [actor, Api()]) as server:
        client = _client(transport, topic)
        first = client.call_async({}, "hold", tag="first")
        assert entered.wait_for(1) == ["first"]
        actor.stop(block=False)  # queued behind "first": what comes after it is dropped
        queued = [client.call_async({}, "hold", tag=n) for n in range(3)]
        assert wait_until(lambda: actor.actor_inbox.qsize() >= 4)
        gate.set()
        assert first.get(timeout=PATIENCE) == "first"
        for future in queued:
            with pytest.raises(dovecote.RemoteError, match="stopped before it handled"):
                future.get(timeout=PATIENCE)
        assert client.call({}, "echo", value="after") == "after"
        assert all(r["alive"] for r in server.actors() if r["kind"] != "endpoint")


def test_notifications_queued_for_a_stopped_endpoint_actor_are_parked(
    transport: dovecote.Transport, topic: str,
) -> None:
    gate, entered = threading.Event(), Recorder()
    actor = Holder.start(gate, entered)
    with listening(transport, [Target(topic=topic)], [actor], max_workers=4):
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
        notifier.info({}, "e", 0)
        assert entered.wait_for(1) == [0]
        actor.stop(block=False)  # queued behind 0: what comes after it is dropped
        for n in (1, 2):
            notifier.info({}, "e", n)
        assert wait_until(lambda: actor.actor_inbox.qsize() >= 3)
        gate.set()
        parked: list[dovecote.DeadLetter] = []

        def two_parked() -> bool:
            parked.extend(dovecote.take_dead_letters(transport, topic, "info", timeout=0.1))
            return len(parked) >= 2

        assert wait_until(two_parked)
    assert sorted(d.message["payload"] for d in parked) == [1, 2]
    assert all("stopped before it handled" in (d.reason or "") for d in parked)


# -- the blocking executor -----------------------------------------------------------------------


def test_wait_follows_the_loop_not_the_thread_that_ran_it(
    transport: dovecote.Transport, topic: str,
) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                     executor="blocking")
    start_returned, keep_going = threading.Event(), threading.Event()

    def run() -> None:
        server.start()
        start_returned.set()
        keep_going.wait(PATIENCE)  # the thread goes on after start() returned

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        assert server.wait_ready(PATIENCE)
        assert _client(transport, topic).call({}, "echo", value=1) == 1
        server.stop()
        assert start_returned.wait(PATIENCE)
        assert server.wait(PATIENCE)
    finally:
        keep_going.set()
        runner.join(PATIENCE)


CTRL_C = textwrap.dedent("""
    import os, signal, sys, threading
    import dovecote

    url, topic = sys.argv[1], sys.argv[2]
    transport = dovecote.get_transport(url)
    entered = threading.Event()

    class Api:
        def slow(self, ctxt):
            entered.set()
            threading.Event().wait(0.5)  # still running when Ctrl+C comes
            return "finished"

    server = dovecote.get_rpc_server(transport, dovecote.Target(topic=topic, server="s1"),
                                     [Api()], executor="blocking")
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=10)
    results = []

    def caller():
        assert server.wait_ready(10)
        future = client.call_async({}, "slow")
        assert entered.wait(10)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C, while the call runs
        results.append(future.get(timeout=10))

    threading.Thread(target=caller, daemon=True).start()
    try:
        server.start()
    except KeyboardInterrupt:
        print("KeyboardInterrupt from start()", flush=True)
    print("wait:", server.wait(10), flush=True)
    print("running:", server.running, flush=True)
    threading.Event().wait(0.2)
    print("reply:", results, flush=True)
    transport.cleanup()
""")


def test_ctrl_c_stops_a_blocking_server_cleanly(transport_url: str, topic: str) -> None:
    """No signal handler installed: Ctrl+C lets the running call finish (its
    caller gets the reply), stops the listeners, and raises KeyboardInterrupt
    from ``start()`` once the server has stopped."""
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C, transport_url, topic], capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if not line[:4].isdigit()]  # logs
    assert lines == ["KeyboardInterrupt from start()", "wait: True", "running: False",
                     "reply: ['finished']"], result.stdout + result.stderr[-3000:]


# -- misuse ------------------------------------------------------------------------------------


def test_cleanup_before_stop_neither_spins_nor_hangs(transport_url: str, topic: str) -> None:
    transport = dovecote.get_transport(transport_url)
    with structlog.testing.capture_logs() as logs:
        server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()])
        server.start()
        assert _client(transport, topic).call({}, "echo", value=1) == 1
        transport.cleanup()
        assert wait_until(lambda: any(e["event"] == "listener.crashed" for e in logs))
        cpu = time.process_time()
        threading.Event().wait(1.0)  # a window to measure the CPU the server uses
        assert time.process_time() - cpu < 0.5, "the server spins on a closed transport"
        server.stop()
        assert server.wait(PATIENCE)
    crashed = [e for e in logs if e["event"] == "listener.crashed"]
    assert "cleaned up" in crashed[0]["error"]


def test_a_call_after_cleanup_raises_and_starts_nothing(transport_url: str, topic: str) -> None:
    transport = dovecote.get_transport(transport_url)
    client = _client(transport, topic)
    transport.cleanup()
    threads = threading.active_count()
    with pytest.raises(dovecote.MessageDeliveryFailure, match="cleaned up"):
        client.call({}, "echo", value=1)
    with pytest.raises(dovecote.MessageDeliveryFailure, match="cleaned up"):
        client.cast({}, "echo", value=1)
    assert threading.active_count() == threads


def test_an_unread_call_async_is_forgotten_after_its_timeout(
    transport: dovecote.Transport, topic: str,
) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Api()]):
        client = _client(transport, topic)
        client.prepare(timeout=0.2).call_async({}, "echo", value="never read")
        threading.Event().wait(0.3)  # past its timeout
        assert client.call({}, "echo", value="next") == "next"
    assert not transport.driver._pending  # neither call is remembered any more


def test_pykka_stop_all_leaves_servers_running(transport: dovecote.Transport,
                                              topic: str) -> None:
    """dovecote's actors are not in pykka's registry: an application's
    ``ActorRegistry.stop_all()`` stops its own actors, not servers."""

    class Own(pykka.ThreadingActor):
        pass

    own = Own.start()
    with serve(transport, Target(topic=topic, server="s1"), [Api()]) as server:
        ours = {r["urn"] for r in server.actors()}
        registered = {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}
        assert not ours & registered
        pykka.ActorRegistry.stop_all()
        assert not own.is_alive()
        assert _client(transport, topic).call({}, "echo", value="still") == "still"
        assert all(r["alive"] for r in server.actors())


def test_stop_returns_at_once_and_wait_reports_a_stuck_endpoint(
    transport: dovecote.Transport, topic: str,
) -> None:
    api = Api()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [api])
    server.start()
    client = _client(transport, topic)
    future = client.call_async({}, "hold", tag="stuck")
    assert api.entered.wait_for(1) == ["stuck"]
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 0.1
    assert server.wait(0.3) is False  # the endpoint still runs
    api.open()
    assert future.get(timeout=PATIENCE) == "stuck"  # and is still answered
    assert server.wait(PATIENCE)
    assert collections.Counter(r["kind"] for r in server.actors()) == collections.Counter()
