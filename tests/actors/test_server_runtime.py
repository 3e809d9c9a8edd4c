"""The server's actor runtime on every transport: executors, listeners added and
removed at any time, graceful stop, restart, no thread leak, flow control
under a flood, listener crash recovery, BaseException containment and
``server.actors()``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pykka
import pytest
import structlog
from _rpc_support import (
    PATIENCE,
    Gate,
    QueueProbe,
    Recorder,
    delete_queues,
    kind_of,
    running,
    serve,
    wait_until,
)

import dovecote
from dovecote import Target
from dovecote.drivers.base import IncomingMessage, Listener
from dovecote.drivers.memory import MemoryDriver

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _forget_queues(request: pytest.FixtureRequest, topic: str) -> Iterator[None]:
    """Topic queues outlive a test on RabbitMQ: delete this test's."""
    url = (request.getfixturevalue("transport_url")
           if "transport_url" in request.fixturenames else "memory://")
    yield
    delete_queues(url, topic, f"{topic}.s1", f"{topic}_b", f"{topic}_c")


class Where:
    """Tells which thread runs it; can stop its own server."""

    def __init__(self) -> None:
        self.server: Any = None
        self.seen = Recorder()

    def remember(self, ctxt: dict[str, Any], value: Any) -> None:
        self.seen.add(value)

    def thread(self, ctxt: dict[str, Any]) -> str:
        return threading.current_thread().name

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def stop_server(self, ctxt: dict[str, Any]) -> str:
        self.server.stop()
        return "stopping"

    def slow(self, ctxt: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)  # simulates work
        return threading.current_thread().name


def client_for(transport: dovecote.Transport, topic: str, **kwargs: Any) -> dovecote.RPCClient:
    kwargs.setdefault("timeout", PATIENCE)
    return dovecote.get_rpc_client(transport, Target(topic=topic), **kwargs)


def listeners(server: Any) -> list[dict[str, Any]]:
    return [r for r in server.actors() if r["kind"] == "listener" and r["alive"]]


# -- executors -------------------------------------------------------------------------
def test_blocking_runs_endpoints_in_the_thread_that_called_start(
    transport: dovecote.Transport, topic: str
) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Where()],
                                     executor="blocking")
    returned = threading.Event()

    def run() -> None:
        server.start()
        returned.set()

    runner = threading.Thread(target=run, name="the-caller")
    runner.start()
    try:
        assert server.wait_ready(PATIENCE)
        client = client_for(transport, topic)
        assert {client.call({}, "thread") for _ in range(5)} == {"the-caller"}
        assert not returned.is_set()  # start() blocks while the server runs
    finally:
        server.stop()  # from another thread
    assert returned.wait(PATIENCE)
    assert server.wait(PATIENCE)
    runner.join(PATIENCE)


def test_blocking_stopped_from_an_endpoint(transport: dovecote.Transport, topic: str) -> None:
    where = Where()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [where],
                                     executor="blocking")
    where.server = server
    runner = threading.Thread(target=server.start, name="the-caller")
    runner.start()
    assert server.wait_ready(PATIENCE)
    client = client_for(transport, topic)
    assert client.call({}, "stop_server") == "stopping"  # the reply still goes out
    runner.join(PATIENCE)
    assert not runner.is_alive()
    assert server.wait(PATIENCE)


def test_blocking_in_the_main_thread_stopped_by_a_signal_handler(
    transport: dovecote.Transport, topic: str
) -> None:
    assert threading.current_thread() is threading.main_thread()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Where()],
                                     executor="blocking")
    seen: list[Any] = []

    def on_signal(signum: int, frame: Any) -> None:
        server.stop()

    def drive() -> None:
        try:
            assert server.wait_ready(PATIENCE)
            seen.append(client_for(transport, topic).call({}, "thread"))
        except BaseException as exc:
            seen.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, on_signal)
    driver = threading.Thread(target=drive)
    try:
        driver.start()
        started = time.monotonic()
        server.start()  # returns once the handler has called stop()
        assert time.monotonic() - started < PATIENCE
    finally:
        signal.signal(signal.SIGUSR1, previous)
        driver.join(PATIENCE)
    assert seen == [threading.main_thread().name]
    assert server.wait(PATIENCE)


def test_threading_runs_n_slow_calls_on_n_workers_at_once(
    transport: dovecote.Transport, topic: str
) -> None:
    workers, delay = 8, 0.4
    with serve(transport, Target(topic=topic, server="s1"), [Where()], max_workers=workers):
        client = client_for(transport, topic)
        client.call({}, "echo", value="warm")
        started = time.monotonic()
        futures = [client.call_async({}, "slow", seconds=delay) for _ in range(workers)]
        threads = [f.get(timeout=PATIENCE) for f in futures]
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 * workers * delay, elapsed
    assert len(set(threads)) == workers  # each on its own worker
    assert all(name.startswith("dovecote-worker") for name in threads)


def test_executor_and_sizes_are_checked(transport: dovecote.Transport, topic: str) -> None:
    target = Target(topic=topic)
    with pytest.raises(ValueError, match="executor"):
        dovecote.get_rpc_server(transport, target, [], executor="eventlet")
    with pytest.raises(ValueError, match="max_workers"):
        dovecote.get_rpc_server(transport, target, [], max_workers=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        dovecote.get_rpc_server(transport, target, [], max_in_flight=0)


# -- listeners ---------------------------------------------------------------------------
def test_listen_before_and_after_start_adds_listener_actors(
    transport: dovecote.Transport, topic: str, unique: str
) -> None:
    other = dovecote.get_transport(f"memory://second_{unique}")
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Where()])
    server.listen(transport, Target(topic=f"{topic}_b"))
    try:
        with running(server):
            assert sorted(r["target"] for r in listeners(server)) == sorted(
                [str(Target(topic=topic, server="s1")), str(Target(topic=f"{topic}_b"))])
            server.listen(transport, Target(topic=f"{topic}_c"))
            server.listen(other, Target(topic="elsewhere"))
            assert wait_until(lambda: len(listeners(server)) == 4)
            records = listeners(server)
            assert {r["target"] for r in records} >= {
                str(Target(topic=f"{topic}_c")), str(Target(topic="elsewhere"))}
            assert {r["transport"] for r in records} == {str(transport.url), str(other.url)}
            for name in (topic, f"{topic}_b", f"{topic}_c"):
                assert client_for(transport, name).call({}, "echo", value=name) == name
            assert client_for(other, "elsewhere").call({}, "echo", value=1) == 1
        assert server.actors() == [] or not any(r["alive"] for r in server.actors()
                                                if r["kind"] != "endpoint")
    finally:
        other.cleanup()


def test_remove_listener_stops_its_actor(transport: dovecote.Transport, topic: str) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Where()]) as server:
        spec = server.listen(transport, Target(topic=f"{topic}_b"))
        assert client_for(transport, f"{topic}_b").call({}, "echo", value="b") == "b"
        assert len(listeners(server)) == 2
        server.remove_listener(spec)
        assert wait_until(lambda: len(listeners(server)) == 1)
        assert listeners(server)[0]["target"] == str(Target(topic=topic, server="s1"))
        with pytest.raises(dovecote.MessagingTimeout):
            client_for(transport, f"{topic}_b", timeout=0.5).call({}, "echo", value="gone")
        assert client_for(transport, topic).call({}, "echo", value="a") == "a"
        # removed before start: not listened to after a restart either
        server.stop()
        assert server.wait(PATIENCE)
        server.start()
        assert len(listeners(server)) == 1


@pytest.mark.parametrize("limit", [1, 3, 64])
def test_a_small_max_in_flight_is_shared_by_every_listener(unique: str, limit: int) -> None:
    """Listeners take turns for credit: one whose idle polls hold all of a small
    ``max_in_flight`` does not starve another listener of the same server."""
    first = dovecote.get_transport(f"memory://first_{unique}")
    second = dovecote.get_transport(f"memory://second_{unique}")
    try:
        server = dovecote.get_rpc_server(first, Target(topic="work", server="s1"), [Where()],
                                         max_workers=2, max_in_flight=limit)
        with running(server):
            server.listen(second, Target(topic="work", server="s1"))
            assert wait_until(lambda: len(listeners(server)) == 2)
            for value in range(10):
                assert client_for(second, "work").call({}, "echo", value=value) == value
                assert client_for(first, "work").call({}, "echo", value=value) == value
    finally:
        first.cleanup()
        second.cleanup()


def test_a_removed_listener_that_keeps_crashing_is_not_restarted(unique: str) -> None:
    """``remove_listener`` stops a listener that is crashing and restarting with
    backoff: it is not restarted again, and leaves ``actors()``."""
    transport = dovecote.get_transport(f"memory://kept_{unique}")
    broken = dovecote.get_transport(f"memory://broken_{unique}")
    try:
        with serve(transport, Target(topic="work", server="s1"), [Where()]) as server:
            spec = server.listen(broken, Target(topic="work"))
            broken.cleanup()  # its listener crashes, and is restarted with backoff
            assert wait_until(lambda: sum(
                e["event"] == "listener.restarting" for e in server.events(kind="dispatcher")
            ) >= 2)
            server.remove_listener(spec)
            assert wait_until(lambda: [r["target"] for r in listeners(server)] == [
                str(Target(topic="work", server="s1"))])
            assert client_for(transport, "work").call({}, "echo", value=1) == 1
    finally:
        transport.cleanup()


# -- stop, wait, restart, threads ---------------------------------------------------------
@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_stop_is_graceful_in_flight_calls_get_their_replies(
    transport: dovecote.Transport, topic: str, executor: str
) -> None:
    gate = Gate()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [gate],
                                     executor=executor, max_workers=4)
    runner = None
    if executor == "blocking":
        runner = threading.Thread(target=server.start)
        runner.start()
        assert server.wait_ready(PATIENCE)
    else:
        server.start()
    client = client_for(transport, topic)
    in_flight = 4 if executor == "threading" else 1
    futures = [client.call_async({}, "hold", tag=n) for n in range(in_flight)]
    gate.entered.wait_for(in_flight)
    server.stop()
    assert not server.wait(0.2)  # calls are still running
    gate.open()
    assert sorted(f.get(timeout=PATIENCE) for f in futures) == list(range(in_flight))
    assert server.wait(PATIENCE)
    assert not server.running
    if runner is not None:
        runner.join(PATIENCE)
        assert not runner.is_alive()


def test_a_stopped_server_takes_nothing_more(transport: dovecote.Transport, topic: str) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Where()]) as server:
        assert client_for(transport, topic).call({}, "echo", value=1) == 1
        server.stop()
        assert server.wait(PATIENCE)
        with pytest.raises(dovecote.MessagingTimeout):
            client_for(transport, topic, timeout=0.5).call({}, "echo", value=2)


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_start_again_after_wait(transport: dovecote.Transport, topic: str, executor: str) -> None:
    where = Where()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [where],
                                     executor=executor)
    client = client_for(transport, topic)
    for round_ in range(3):
        with running(server):
            # listening as soon as start() returns: a fanout cast sent now arrives
            client.prepare(fanout=True).cast({}, "remember", value=round_)
            assert client.call({}, "echo", value=round_) == round_
            assert where.seen.wait_for(round_ + 1) == list(range(round_ + 1))
        assert not server.running


def test_no_thread_leak_after_start_stop_cycles(
    transport_url: str, topic: str
) -> None:
    baseline = threading.active_count()
    transport = dovecote.get_transport(transport_url)
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Where()],
                                     max_workers=4)
    client = client_for(transport, topic, call_monitor_timeout=1.0)  # heartbeat thread too
    try:
        with running(server):
            client.call({}, "slow", seconds=0.6)
        with_transport = threading.active_count()
        for _ in range(4):
            with running(server):
                client.call({}, "slow", seconds=0.6)
                assert threading.active_count() > with_transport
            assert threading.active_count() == with_transport, [
                t.name for t in threading.enumerate()]
    finally:
        transport.cleanup()
    assert wait_until(lambda: threading.active_count() == baseline), [
        t.name for t in threading.enumerate()]


# -- flow control --------------------------------------------------------------------------
@pytest.fixture
def flood_transport(transport_url: str) -> Iterator[dovecote.Transport]:
    """A transport whose driver buffers little by itself, so that what the
    server has not taken stays in the broker's queue where the test sees it
    (kombu's prefetch and Proton's link credit are the driver's own buffers)."""
    options: dict[str, Any] = {}
    if transport_url.startswith(("rabbit", "kombu+")):
        options["prefetch_count"] = 5
    elif transport_url.startswith(("amqp1", "amqps")):
        options["prefetch"] = 5
    transport = dovecote.get_transport(transport_url, **options)
    yield transport
    transport.cleanup()


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Drop dovecote's debug lines (two per message) for a flood: rendering
    200,000 of them would take longer than the flood itself."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.configure(**saved)


FLOOD = {"memory": 100_000, "rabbit": 5_000, "amqp1": 1_500, "redis": 2_000}
DRIVER_BUFFER = {"memory": 0, "rabbit": 5, "amqp1": 5, "redis": 5}


@pytest.mark.usefixtures("quiet_logs")
def test_flood_waits_at_the_broker_not_in_mailboxes(
    flood_transport: dovecote.Transport, topic: str
) -> None:
    kind = kind_of(flood_transport)
    total, limit, slack = FLOOD[kind], 100, DRIVER_BUFFER[kind]
    release = threading.Event()
    finished = threading.Event()
    count = [0]
    lock = threading.Lock()

    class Sink:
        def take(self, ctxt: dict[str, Any], n: int) -> None:
            release.wait(30)
            with lock:
                count[0] += 1
                if count[0] == total:
                    finished.set()

    server = dovecote.get_rpc_server(flood_transport, Target(topic=topic, server="s1"),
                                     [Sink()], max_workers=4, max_in_flight=limit)
    violations: list[str] = []

    probe = QueueProbe(flood_transport)

    def check() -> None:
        depth = probe.depth(topic)
        done = count[0]
        records = server.actors()
        taken_not_done = total - depth - done
        if taken_not_done > limit + slack:
            violations.append(f"{taken_not_done} taken and unfinished (queue {depth})")
        boxes = sum(r["mailbox"] for r in records if r["kind"] != "endpoint")
        if boxes > limit + 2 * len(records):
            violations.append(f"{boxes} actor messages waiting: {records}")
        listener_box = sum(r["mailbox"] for r in records if r["kind"] == "listener")
        if listener_box > 2:
            violations.append(f"listener mailbox {listener_box}")

    try:
        with running(server):
            client = client_for(flood_transport, topic)
            for n in range(total):
                client.cast({}, "take", n=n)
            # the gate is shut: the server holds at most max_in_flight, the rest waits
            assert wait_until(lambda: probe.depth(topic) <= total - limit, timeout=10)
            for _ in range(20):
                check()
            assert probe.depth(topic) >= total - limit - slack
            release.set()
            while not finished.wait(0.05):  # sample while it drains
                check()
                assert not violations, violations[:5]
            assert probe.depth(topic) == 0
    finally:
        release.set()
        probe.close()
    assert not violations, violations[:5]


# -- listener crash and restart -------------------------------------------------------------
class FaultyDriver(MemoryDriver):
    """``faulty://NAME``: the memory broker NAME, behind listeners whose first
    ``FAILURES[NAME]`` polls raise (a transport failing beyond its retries)."""

    FAILURES: ClassVar[dict[str, int]] = {}

    def listen(self, target: Target) -> Listener:
        return _FaultyListener(super().listen(target), self.broker.name)

    def listen_for_notifications(
        self, targets_and_priorities: Any, pool: str | None,
    ) -> Listener:
        return _FaultyListener(super().listen_for_notifications(targets_and_priorities, pool),
                               self.broker.name)


class _FaultyListener(Listener):
    def __init__(self, inner: Listener, name: str) -> None:
        self.inner = inner
        self.name = name

    def poll(self, timeout: float, max_messages: int) -> list[IncomingMessage]:
        if FaultyDriver.FAILURES.get(self.name, 0) > 0:
            FaultyDriver.FAILURES[self.name] -= 1
            raise ConnectionError("the broker went away")
        return self.inner.poll(timeout, max_messages)

    def stop(self) -> None:
        self.inner.stop()

    def cleanup(self) -> None:
        self.inner.cleanup()


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, unique: str) -> Iterator[dovecote.Transport]:
    """A ``faulty://`` transport, registered the way a source tree finds drivers."""
    from dovecote import _transport

    monkeypatch.setitem(_transport._BUILTIN_DRIVERS, "faulty",
                        f"{__name__}:FaultyDriver")
    transport = dovecote.get_transport(f"faulty://{unique}")
    yield transport
    transport.cleanup()


def test_a_crashed_listener_is_restarted_with_backoff(
    faulty: dovecote.Transport, unique: str, topic: str
) -> None:
    FaultyDriver.FAILURES[unique] = 3
    with structlog.testing.capture_logs() as logs, \
            serve(faulty, Target(topic=topic, server="s1"), [Where()]) as server:
        client = client_for(faulty, topic)
        assert client.call({}, "echo", value="served") == "served"
        assert len(listeners(server)) == 1
    crashed = [e for e in logs if e["event"] == "listener.crashed"]
    restarting = [e for e in logs if e["event"] == "listener.restarting" and "delay_s" in e
                  and e.get("actor") == "DispatcherActor"]
    assert len(crashed) == 3
    assert all("the broker went away" in e["error"] for e in crashed)
    assert [e["delay_s"] for e in restarting] == [0.1, 0.2, 0.4]  # doubling
    assert [e["attempt"] for e in restarting] == [1, 2, 3]
    assert FaultyDriver.FAILURES[unique] == 0


# -- BaseException from user code ------------------------------------------------------------
class Bomb:
    def exit(self, ctxt: dict[str, Any]) -> None:
        raise SystemExit(3)

    def interrupt(self, ctxt: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value


class BombActor(pykka.ThreadingActor):
    def actor_exit(self, ctxt: dict[str, Any]) -> None:
        raise SystemExit(4)

    def actor_interrupt(self, ctxt: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    def actor_echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value


class Bystander(pykka.ThreadingActor):
    def ping(self) -> str:
        return "pong"


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_base_exceptions_do_not_stop_actors_or_the_server(
    transport: dovecote.Transport, topic: str, executor: str
) -> None:
    bomb_actor = BombActor.start()
    bystander = Bystander.start()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"),
                                     [Bomb(), bomb_actor], executor=executor)
    try:
        with running(server):
            client = client_for(transport, topic)
            for method in ("exit", "interrupt", "actor_exit", "actor_interrupt"):
                with pytest.raises(dovecote.MessagingException):
                    client.call({}, method)
                assert client.call({}, "echo", value=method) == method
                assert client.call({}, "actor_echo", value=method) == method
            client.cast({}, "exit")
            client.cast({}, "actor_interrupt")
            assert client.call({}, "echo", value="after casts") == "after casts"
            assert all(r["alive"] for r in server.actors())
            assert bystander.proxy().ping().get(timeout=PATIENCE) == "pong"
            assert server.running
    finally:
        bomb_actor.stop(block=False)
        bystander.stop(block=False)


# -- server.actors() ----------------------------------------------------------------------
def test_actors_snapshot(transport: dovecote.Transport, topic: str) -> None:
    endpoint_actor = Bystander.start()
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Where(), endpoint_actor],
                   max_workers=3, name="snap") as server:
            client = client_for(transport, topic)
            for n in range(5):
                client.call({}, "echo", value=n)
            with pytest.raises(TypeError):
                client.call({}, "echo", wrong=1)
            records = server.actors()
            kinds = sorted(r["kind"] for r in records)
            assert kinds == ["dispatcher", "endpoint", "listener", "worker", "worker", "worker"]
            for record in records:
                assert {"kind", "urn", "target", "alive", "mailbox", "handled",
                        "failed"} <= set(record)
                assert record["urn"].startswith("urn:uuid:")
                assert record["alive"] is True
                assert record["mailbox"] >= 0
                assert record["server"] == "snap"
            (listener,) = [r for r in records if r["kind"] == "listener"]
            assert listener["target"] == str(Target(topic=topic, server="s1"))
            assert listener["handled"] >= 6
            # a worker counts a call once its reply is out: the counters may lag a little
            def worker_counts() -> tuple[int, int]:
                workers = [r for r in server.actors() if r["kind"] == "worker"]
                return sum(r["handled"] for r in workers), sum(r["failed"] for r in workers)

            assert wait_until(lambda: worker_counts() == (5, 1)), worker_counts()
            (endpoint,) = [r for r in records if r["kind"] == "endpoint"]
            assert endpoint["urn"] == endpoint_actor.actor_urn
            assert len({r["urn"] for r in records}) == len(records)
    finally:
        endpoint_actor.stop(block=False)
