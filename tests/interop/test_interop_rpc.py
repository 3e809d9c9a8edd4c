"""dovecote and the real oslo.messaging on one RabbitMQ, in both directions.

Every behaviour test runs twice: an oslo.messaging client against a dovecote
server, and a dovecote client against an oslo.messaging server (threading
executor). Both sides allow :mod:`interop_helpers`, so its exceptions keep their
type; oslo.messaging clients also allow ``oslo_messaging.rpc.dispatcher``, the
module dovecote names in its ``NoSuchMethod`` / ``UnsupportedVersion`` failures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import oslo_messaging
import pytest
from interop_helpers import InteropError
from test_kombu_driver import oslo_conf

import dovecote

pytestmark = [pytest.mark.interop, pytest.mark.broker, pytest.mark.timeout(60)]

HELPERS = "interop_helpers"
DISPATCHER = "oslo_messaging.rpc.dispatcher"

NESTED = {
    "list": [1, 2.5, None, True, False, "ünïcode ☃"],
    "deep": {"a": {"b": [{"c": [], "d": {}}, [[1], [2, [3]]]]}},
    "big": 2**53 + 1,
    "negative": -7,
    "empty": "",
}
CTXT = {"user_id": "u-1", "project_id": "p-1", "roles": ["admin", "reader"],
        "request_id": "req-abc", "extra": {"trace": [1, {"span": "x"}]}}


class Endpoint:
    """The same endpoint on both sides: plain methods, ``ctxt`` a dict."""

    def __init__(self, name: str, casts: queue.SimpleQueue[Any], target: Any = None) -> None:
        self.name = name
        self._casts = casts
        self._release = threading.Event()  # set when the server is torn down
        if target is not None:
            self.target = target

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return {"value": value, "ctxt": ctxt, "server": self.name}

    def record(self, ctxt: dict[str, Any], value: Any) -> None:
        self._casts.put((self.name, ctxt, value))

    def fail(self, ctxt: dict[str, Any], kind: str, text: str) -> None:
        if kind == "builtin":
            raise ValueError(text)
        raise InteropError(text, code=7)

    def slow(self, ctxt: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Busy for ``seconds`` (the work a long call stands for)."""
        self._release.wait(seconds)
        return {"slept": seconds}


@dataclasses.dataclass
class Side:
    """One library's RPC API on one transport; both expose the same names."""

    lib: ModuleType
    transport: Any

    @property
    def name(self) -> str:
        return "dovecote" if self.lib is dovecote else "oslo"

    def target(self, **fields: Any) -> Any:
        return self.lib.Target(**fields)

    def ctxt_seen(self, ctxt: dict[str, Any], monitor: float | None = None) -> dict[str, Any]:
        """The context an endpoint of this side gets for ``ctxt``: oslo.messaging
        adds the caller's call-monitor timeout as ``client_timeout``."""
        return ctxt | {"client_timeout": monitor} if self.lib is oslo_messaging else ctxt

    def client(self, topic: str, **options: Any) -> Any:
        options.setdefault("timeout", 10)
        return self.lib.get_rpc_client(self.transport, self.target(topic=topic), **options)

    @contextlib.contextmanager
    def serving(self, topic: str, *endpoints: Endpoint, server: str = "s1") -> Iterator[Any]:
        """An RPC server (threading executor) on ``topic`` until the block ends;
        stopped and waited for even when the block fails."""
        target = self.target(topic=topic, server=server)
        if self.lib is dovecote:
            rpc_server = dovecote.get_rpc_server(self.transport, target, list(endpoints),
                                                 executor="threading")
        else:  # no executor argument: deprecated, and threading is the default
            rpc_server = oslo_messaging.get_rpc_server(self.transport, target, list(endpoints))
            assert rpc_server.executor_type == "threading"
        rpc_server.start()
        try:
            yield rpc_server
        finally:
            for endpoint in endpoints:
                endpoint._release.set()
            rpc_server.stop()
            finished = rpc_server.wait(10) if self.lib is dovecote else rpc_server.wait()
            assert finished is not False, f"{self.name} server did not stop"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Servers stopped, transports cleaned up: no thread a test started outlives it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    leaked = []
    for thread in set(threading.enumerate()) - before:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread.name)
    assert leaked == []


def oslo_transport(url: str, allowed: list[str] | None) -> Any:
    return oslo_messaging.get_rpc_transport(oslo_conf(), url=url, allowed_remote_exmods=allowed)


@pytest.fixture
def dovecote_side(rabbitmq: str) -> Iterator[Side]:
    transport = dovecote.get_transport(rabbitmq, allowed_remote_exmods=[HELPERS])
    yield Side(dovecote, transport)
    transport.cleanup()


@pytest.fixture
def oslo_side(rabbitmq: str) -> Iterator[Side]:
    transport = oslo_transport(rabbitmq, [HELPERS, DISPATCHER])
    yield Side(oslo_messaging, transport)
    transport.cleanup()


@pytest.fixture(params=["oslo_client-dovecote_server", "dovecote_client-oslo_server"])
def pair(request: pytest.FixtureRequest, dovecote_side: Side, oslo_side: Side) -> tuple[
    Side, Side
]:
    """(client side, server side)."""
    if request.param.startswith("oslo"):
        return oslo_side, dovecote_side
    return dovecote_side, oslo_side


def test_call_returns_nested_json_and_sees_the_context(pair: tuple[Side, Side], topic: str) -> None:
    client_side, server_side = pair
    with server_side.serving(topic, Endpoint("s1", queue.SimpleQueue())):
        got = client_side.client(topic).call(CTXT, "echo", value=NESTED)
    assert got == {"value": NESTED, "ctxt": server_side.ctxt_seen(CTXT), "server": "s1"}


def test_cast_direct_call_and_fanout(pair: tuple[Side, Side], topic: str) -> None:
    client_side, server_side = pair
    casts: queue.SimpleQueue[Any] = queue.SimpleQueue()
    with server_side.serving(topic, Endpoint("s1", casts), server="s1"), \
            server_side.serving(topic, Endpoint("s2", casts), server="s2"):
        client = client_side.client(topic)
        client.cast(CTXT, "record", value=NESTED)
        name, ctxt, value = casts.get(timeout=5)
        assert name in {"s1", "s2"}
        assert (ctxt, value) == (server_side.ctxt_seen(CTXT), NESTED)

        # a call to one server is answered by that server only
        assert client.prepare(server="s2").call({}, "echo", value=1)["server"] == "s2"
        assert client.prepare(server="s1").call({}, "echo", value=1)["server"] == "s1"
        client.prepare(server="s2").cast({}, "record", value="direct")
        assert casts.get(timeout=5) == ("s2", server_side.ctxt_seen({}), "direct")

        client.prepare(fanout=True).cast({"fan": "out"}, "record", value=[1, {"x": 2}])
        fanned = sorted(casts.get(timeout=5) for _ in range(2))
        fan = server_side.ctxt_seen({"fan": "out"})
        assert fanned == [("s1", fan, [1, {"x": 2}]), ("s2", fan, [1, {"x": 2}])]


def test_exceptions_keep_their_types(pair: tuple[Side, Side], topic: str) -> None:
    client_side, server_side = pair
    with server_side.serving(topic, Endpoint("s1", queue.SimpleQueue())):
        client = client_side.client(topic)
        with pytest.raises(ValueError, match="a bad value") as builtin:
            client.call({}, "fail", kind="builtin", text="a bad value")
        assert not isinstance(builtin.value, (dovecote.RemoteError, oslo_messaging.RemoteError))

        with pytest.raises(InteropError, match="a custom failure") as custom:
            client.call({}, "fail", kind="custom", text="a custom failure")
        assert custom.value.code == 7
        assert custom.value.args[:2] == ("a custom failure", 7)
        assert "Traceback" in str(custom.value)  # the remote traceback travels along


def test_missing_method_gives_no_such_method(pair: tuple[Side, Side], topic: str) -> None:
    client_side, server_side = pair
    with server_side.serving(topic, Endpoint("s1", queue.SimpleQueue())), \
            pytest.raises(client_side.lib.NoSuchMethod, match="no_such_thing") as missing:
        client_side.client(topic).call({}, "no_such_thing")
    assert type(missing.value).__name__ == "NoSuchMethod_Remote"
    if client_side.lib is oslo_messaging:
        assert missing.value.method == "no_such_thing"  # rebuilt from dovecote's args


def test_version_and_namespace_routing(pair: tuple[Side, Side], topic: str) -> None:
    client_side, server_side = pair
    casts: queue.SimpleQueue[Any] = queue.SimpleQueue()
    versioned = Endpoint("inventory-2.3", casts,
                         target=server_side.target(namespace="inventory", version="2.3"))
    with server_side.serving(topic, Endpoint("default-1.0", casts), versioned):
        client = client_side.client(topic)
        assert client.call({}, "echo", value=0)["server"] == "default-1.0"
        assert client.prepare(version="1.0").call({}, "echo", value=0)["server"] == "default-1.0"
        for version in ("2.0", "2.3"):
            answer = client.prepare(namespace="inventory", version=version).call(
                {}, "echo", value=1)
            assert answer["server"] == "inventory-2.3"
        for namespace, version in (("inventory", "2.4"), ("inventory", "3.0"),
                                   ("inventory", "1.0"), ("elsewhere", "1.0"), (None, "1.1")):
            with pytest.raises(client_side.lib.UnsupportedVersion, match=version):
                client.prepare(namespace=namespace, version=version).call({}, "echo", value=2)
        # a namespace and version that exist, a method that does not
        with pytest.raises(client_side.lib.NoSuchMethod, match="nothing_here"):
            client.prepare(namespace="inventory", version="2.1").call({}, "nothing_here")


def test_long_call_survives_through_call_monitor_heartbeats(
    pair: tuple[Side, Side], topic: str, dovecote_side: Side,
) -> None:
    """A call longer than ``call_monitor_timeout`` (shorter than ``timeout``)
    succeeds because the server heartbeats; the same client times out after
    ``call_monitor_timeout`` when nothing answers (so the monitor is really on).
    oslo.messaging servers heartbeat only for a whole ``_timeout`` of at least 2."""
    client_side, server_side = pair
    monitor = 2
    silent = dovecote_side.transport.driver.listen(dovecote.Target(topic=f"{topic}_silent"))
    try:
        started = time.monotonic()
        with pytest.raises(client_side.lib.MessagingTimeout):
            client_side.client(f"{topic}_silent", timeout=10, call_monitor_timeout=monitor).call(
                {}, "echo", value=0)
        assert monitor <= time.monotonic() - started < monitor + 1.5
    finally:
        silent.cleanup()

    with server_side.serving(topic, Endpoint("s1", queue.SimpleQueue())):
        client = client_side.client(topic, timeout=10, call_monitor_timeout=monitor)
        started = time.monotonic()
        assert client.call({}, "slow", seconds=3.5) == {"slept": 3.5}
        assert time.monotonic() - started >= 3.5


def test_default_oslo_client_sees_dovecote_failures_as_it_sees_oslo_ones(
    rabbitmq: str, topic: str, dovecote_side: Side, oslo_side: Side,
) -> None:
    """An oslo.messaging client that allows no module gets the same from a
    dovecote server as from an oslo.messaging server: builtins keep their type,
    everything else (``NoSuchMethod`` included) is a ``RemoteError``."""
    transport = oslo_transport(rabbitmq, None)
    try:
        default = Side(oslo_messaging, transport)
        outcomes: dict[str, list[tuple[str, str | None]]] = {}
        for server_side in (dovecote_side, oslo_side):
            server_topic = f"{topic}_{server_side.name}"
            with server_side.serving(server_topic, Endpoint("s1", queue.SimpleQueue())):
                client = default.client(server_topic)
                seen = []
                for method, kwargs in (("fail", {"kind": "builtin", "text": "t"}),
                                       ("fail", {"kind": "custom", "text": "t"}),
                                       ("no_such_thing", {})):
                    with pytest.raises(Exception) as info:  # noqa: PT011 - compared below
                        client.call({}, method, **kwargs)
                    seen.append((type(info.value).__name__, getattr(info.value, "exc_type", None)))
                outcomes[server_side.name] = seen
    finally:
        transport.cleanup()
    assert outcomes["dovecote"] == outcomes["oslo"]
    assert outcomes["dovecote"] == [
        ("ValueError", None),
        ("RemoteError", "InteropError"),
        ("RemoteError", "NoSuchMethod"),
    ]


def test_oslo_ping_answered_both_ways(
    rabbitmq: str, topic: str, dovecote_side: Side, oslo_side: Side,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dovecote server answers oslo.messaging's ``oslo_rpc_server_ping`` (its
    control endpoint is on by default), and ``dovecote ping`` pings an
    oslo.messaging server with ``rpc_ping_enabled`` through that method."""
    import subprocess
    import sys

    from oslo_config import cfg
    from oslo_messaging.rpc import dispatcher

    with dovecote_side.serving(f"{topic}_dovecote", Endpoint("s1", queue.SimpleQueue())):
        assert oslo_side.client(f"{topic}_dovecote").call({}, "oslo_rpc_server_ping") == "pong"
    cfg.CONF.register_opts(dispatcher._dispatcher_opts)  # as oslo's RPCDispatcher does
    cfg.CONF.set_override("rpc_ping_enabled", True)
    try:
        with oslo_side.serving(f"{topic}_oslo", Endpoint("s1", queue.SimpleQueue())):
            done = subprocess.run(
                [sys.executable, "-m", "dovecote.cli._main", "ping", rabbitmq, f"{topic}_oslo",
                 "--server", "s1", "--count", "2", "--timeout", "10"],
                capture_output=True, text=True, timeout=60, check=False)
    finally:
        cfg.CONF.clear_override("rpc_ping_enabled")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"pong from {topic}_oslo.s1") == 2
