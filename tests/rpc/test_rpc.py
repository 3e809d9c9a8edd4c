"""The RPC behaviour suite: every test runs on every transport of
``conftest.TRANSPORTS`` through the ``transport`` fixture, against real servers
built of real actors and, for broker transports, the real RabbitMQ."""

from __future__ import annotations

import builtins
import datetime
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import remote_errors
from _rpc_support import PATIENCE, Gate, Recorder, delete_queues, running, serve

import dovecote
from dovecote import Target

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _forget_queues(transport: dovecote.Transport, topic: str) -> Iterator[None]:
    """Topic queues outlive a test on RabbitMQ: delete this test's."""
    yield
    delete_queues(transport, topic, *(f"{topic}.{s}" for s in ("s1", "s2", "s3")))


class Echo:
    """A plain endpoint."""

    def __init__(self, name: str = "echo", recorder: Recorder | None = None) -> None:
        self.name = name
        self.recorder = recorder or Recorder()

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def context(self, ctxt: dict[str, Any]) -> Any:
        return ctxt

    def whoami(self, ctxt: dict[str, Any]) -> str:
        return self.name

    def note(self, ctxt: dict[str, Any], value: Any) -> None:
        self.recorder.add((self.name, value))

    def raise_builtin(self, ctxt: dict[str, Any], kind: str, text: str) -> None:
        raise getattr(builtins, kind)(text)

    def raise_boom(self, ctxt: dict[str, Any], text: str) -> None:
        raise remote_errors.Boom(text)

    def raise_refused(self, ctxt: dict[str, Any], reason: str, code: int) -> None:
        raise remote_errors.Refused(reason, code=code)

    def wait_for(self, ctxt: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)  # simulates a long-running method
        return "done"

    def slow_whoami(self, ctxt: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)  # simulates work, so the other server gets a turn
        return self.name


def client_for(transport: dovecote.Transport, topic: str, **kwargs: Any) -> dovecote.RPCClient:
    kwargs.setdefault("timeout", PATIENCE)
    return dovecote.get_rpc_client(transport, Target(topic=topic), **kwargs)


# -- call, cast, fanout, server targets --------------------------------------------------
def test_call_returns_the_result_and_carries_the_context(
    transport: dovecote.Transport, topic: str
) -> None:
    value = {"list": [1, 2.5, "three", None, True], "nested": {"ünï": "cødé"}}
    with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
        client = client_for(transport, topic)
        assert client.call({}, "echo", value=value) == value
        assert client.call({"user": "alice", "roles": ["admin"]}, "context") == {
            "user": "alice", "roles": ["admin"]}
        assert client.call({}, "echo", value=None) is None


def test_cast_runs_the_method_and_returns_at_once(
    transport: dovecote.Transport, topic: str
) -> None:
    recorder = Recorder()
    with serve(transport, Target(topic=topic, server="s1"), [Echo(recorder=recorder)]):
        client = client_for(transport, topic)
        assert client.cast({}, "note", value=1) is None
        assert client.cast({}, "note", value=2) is None
        assert sorted(recorder.wait_for(2)) == [("echo", 1), ("echo", 2)]


def test_fanout_cast_reaches_every_server(transport: dovecote.Transport, topic: str) -> None:
    recorder = Recorder()
    with serve(transport, Target(topic=topic, server="s1"), [Echo("s1", recorder)]), \
            serve(transport, Target(topic=topic, server="s2"), [Echo("s2", recorder)]):
        client_for(transport, topic).prepare(fanout=True).cast({}, "note", value="all")
        assert sorted(recorder.wait_for(2)) == [("s1", "all"), ("s2", "all")]
        # exactly one copy each: a plain call afterwards is answered, and no
        # third fanout copy was recorded meanwhile
        assert client_for(transport, topic).prepare(server="s1").call({}, "whoami") == "s1"
        assert len(recorder.items) == 2


def test_server_target_reaches_that_server_only(
    transport: dovecote.Transport, topic: str
) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Echo("s1")]), \
            serve(transport, Target(topic=topic, server="s2"), [Echo("s2")]):
        client = client_for(transport, topic)
        assert {client.prepare(server="s2").call({}, "whoami") for _ in range(6)} == {"s2"}
        assert {client.prepare(server="s1").call({}, "whoami") for _ in range(6)} == {"s1"}


def test_competing_consumers_share_the_topic(transport: dovecote.Transport, topic: str) -> None:
    """Two calls that can only finish together (a barrier of two) with each
    server able to take one request at a time: both servers must serve."""
    barrier = threading.Barrier(2, timeout=PATIENCE)

    class Meet:
        def __init__(self, name: str) -> None:
            self.name = name

        def meet(self, ctxt: dict[str, Any]) -> str:
            barrier.wait()
            return self.name

    opts = {"max_workers": 1, "max_in_flight": 1}
    with serve(transport, Target(topic=topic, server="s1"), [Meet("s1")], **opts), \
            serve(transport, Target(topic=topic, server="s2"), [Meet("s2")], **opts):
        client = client_for(transport, topic)
        futures = [client.call_async({}, "meet") for _ in range(2)]
        assert sorted(f.get(timeout=PATIENCE) for f in futures) == ["s1", "s2"]


def test_many_calls_spread_across_two_servers(transport: dovecote.Transport, topic: str) -> None:
    opts = {"max_workers": 1, "max_in_flight": 1}
    with serve(transport, Target(topic=topic, server="s1"), [Echo("s1")], **opts), \
            serve(transport, Target(topic=topic, server="s2"), [Echo("s2")], **opts):
        client = client_for(transport, topic)
        futures = [client.call_async({}, "slow_whoami", seconds=0.02) for _ in range(20)]
        answers = [f.get(timeout=PATIENCE) for f in futures]
        assert set(answers) == {"s1", "s2"}
        assert min(answers.count("s1"), answers.count("s2")) >= 3


# -- prepare() --------------------------------------------------------------------------
def test_prepare_overrides_options_and_leaves_the_original_alone(
    transport: dovecote.Transport, topic: str
) -> None:
    client = client_for(transport, topic, version_cap="2.5")
    prepared = client.prepare(server="s2", version="2.1", timeout=1.5, namespace="ns",
                              retry=3, call_monitor_timeout=4.0)
    assert prepared.target == Target(topic=topic, server="s2", version="2.1", namespace="ns")
    assert prepared._options.timeout == 1.5
    assert prepared._options.retry == 3
    assert prepared._options.call_monitor_timeout == 4.0
    assert prepared._options.version_cap == "2.5"
    assert client.target == Target(topic=topic)
    assert client._options.timeout == PATIENCE
    again = prepared.prepare(server=None)
    assert again.target.server is None
    assert again.target.version == "2.1"

    class V2:
        target = Target(namespace="ns", version="2.3")

        def where(self, ctxt: dict[str, Any]) -> str:
            return "v2"

    with serve(transport, Target(topic=topic, server="s2"), [V2()]):
        assert prepared.call({}, "where") == "v2"
        with pytest.raises(dovecote.UnsupportedVersion):
            client.prepare(server="s2", version="2.4", namespace="ns").call({}, "where")


# -- timeouts and retry -----------------------------------------------------------------
def test_call_with_no_server_times_out(transport: dovecote.Transport, topic: str) -> None:
    client = client_for(transport, topic, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(dovecote.MessagingTimeout) as caught:
        client.call({}, "echo", value=1)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 3.0
    assert isinstance(caught.value, dovecote.MessagingException)


def test_slow_method_times_out_and_the_server_goes_on(
    transport: dovecote.Transport, topic: str
) -> None:
    gate = Gate()
    with serve(transport, Target(topic=topic, server="s1"), [gate, Echo()]):
        client = client_for(transport, topic)
        started = time.monotonic()
        with pytest.raises(dovecote.MessagingTimeout):
            client.prepare(timeout=0.5).call({}, "hold")
        assert time.monotonic() - started < 3.0
        gate.open()
        assert client.call({}, "echo", value="next") == "next"


@pytest.mark.parametrize("retry", [None, 0, 1, -1])
def test_retry_is_accepted(transport: dovecote.Transport, topic: str, retry: int | None) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
        client = client_for(transport, topic, retry=retry)
        assert client.call({}, "echo", value=retry) == retry
        assert client.prepare(retry=2).call({}, "echo", value="r") == "r"
        client.cast({}, "note", value=1)


# -- version_cap -------------------------------------------------------------------------
def test_version_cap_and_can_send_version(transport: dovecote.Transport, topic: str) -> None:
    uncapped = client_for(transport, topic)
    assert uncapped.can_send_version("99.0")
    assert uncapped.can_send_version()
    capped = client_for(transport, topic, version_cap="1.5")
    assert capped.can_send_version("1.0")
    assert capped.can_send_version("1.5")
    assert not capped.can_send_version("1.6")
    assert not capped.can_send_version("2.0")
    assert not capped.can_send_version("0.9")
    assert capped.can_send_version()  # the target names no version
    assert capped.prepare(version="1.2").can_send_version()
    assert not capped.prepare(version="1.7").can_send_version()

    class V1:
        target = Target(version="1.9")

        def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
            return value

    with serve(transport, Target(topic=topic, server="s1"), [V1()]):
        assert capped.prepare(version="1.4").call({}, "echo", value=1) == 1
        with pytest.raises(dovecote.RPCVersionCapError) as caught:
            capped.prepare(version="1.6").call({}, "echo", value=2)
        assert "1.6" in str(caught.value)
        assert "1.5" in str(caught.value)
        with pytest.raises(dovecote.RPCVersionCapError):
            capped.prepare(version="1.6").cast({}, "echo", value=3)
        with pytest.raises(dovecote.RPCVersionCapError):
            capped.prepare(version="1.6").call_async({}, "echo", value=4)
        # raised before sending: the server still answers what comes next at once
        assert capped.prepare(version="1.5").call({}, "echo", value=5) == 5


# -- call_async ---------------------------------------------------------------------------
def test_call_async_returns_a_pykka_future(transport: dovecote.Transport, topic: str) -> None:
    gate = Gate()
    with serve(transport, Target(topic=topic, server="s1"), [gate, Echo()]):
        client = client_for(transport, topic)
        future = client.call_async({}, "echo", value=[1, 2])
        assert isinstance(future, pykka.Future)
        assert future.get(timeout=PATIENCE) == [1, 2]
        assert future.get(timeout=PATIENCE) == [1, 2]  # a future keeps its value

        held = client.call_async({}, "hold")
        with pytest.raises(pykka.Timeout):
            held.get(timeout=0.1)  # the call goes on
        gate.open()
        assert held.get(timeout=PATIENCE) == "released"

        failing = client.call_async({}, "raise_builtin", kind="ValueError", text="async")
        with pytest.raises(ValueError, match="async"):
            failing.get(timeout=PATIENCE)
        with pytest.raises(ValueError, match="async"):
            failing.get(timeout=PATIENCE)


def test_call_async_times_out_like_call(transport: dovecote.Transport, topic: str) -> None:
    future = client_for(transport, topic, timeout=0.3).call_async({}, "echo", value=1)
    with pytest.raises(dovecote.MessagingTimeout):
        future.get(timeout=PATIENCE)


# -- call_monitor_timeout -----------------------------------------------------------------
def test_heartbeats_keep_a_long_call_alive(transport: dovecote.Transport, topic: str) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
        # the first call on the transport: the time the driver takes to set up its
        # reply queue (~0.2 s on amqp1) must not count against the call monitor
        client = client_for(transport, topic, timeout=PATIENCE, call_monitor_timeout=1.0)
        started = time.monotonic()
        assert client.call({}, "wait_for", seconds=2.2) == "done"
        assert time.monotonic() - started >= 2.2  # well past call_monitor_timeout


def test_a_dead_server_times_out_at_call_monitor_timeout(
    transport: dovecote.Transport, topic: str
) -> None:
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Echo()])
    server.start()
    client = client_for(transport, topic, timeout=30, call_monitor_timeout=1.0)
    assert client.call({}, "echo", value="alive") == "alive"
    server.stop()
    assert server.wait(PATIENCE)
    started = time.monotonic()
    with pytest.raises(dovecote.MessagingTimeout, match="heartbeat"):
        client.call({}, "echo", value="dead")
    assert time.monotonic() - started < 3.0  # not the 30 s call timeout


# -- dispatch: namespaces, versions, methods ------------------------------------------------
class Base10:
    target = Target(version="1.0")

    def which(self, ctxt: dict[str, Any]) -> str:
        return "base-1.0"

    def only_base(self, ctxt: dict[str, Any]) -> str:
        return "only-base"


class Base15:
    target = Target(version="1.5")

    def which(self, ctxt: dict[str, Any]) -> str:
        return "base-1.5"


class Other:
    target = Target(namespace="other", version="2.2", legacy_namespaces=("old",))

    def which(self, ctxt: dict[str, Any]) -> str:
        return "other-2.2"


def test_dispatch_by_namespace_and_version(transport: dovecote.Transport, topic: str) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Base10(), Base15(), Other()]):
        client = client_for(transport, topic)
        assert client.call({}, "which") == "base-1.0"  # no version asks for 1.0
        assert client.prepare(version="1.0").call({}, "which") == "base-1.0"
        assert client.prepare(version="1.3").call({}, "which") == "base-1.5"
        assert client.prepare(version="1.5").call({}, "which") == "base-1.5"
        assert client.prepare(version="1.0").call({}, "only_base") == "only-base"
        other = client.prepare(namespace="other")
        assert other.prepare(version="2.0").call({}, "which") == "other-2.2"
        assert other.prepare(version="2.2").call({}, "which") == "other-2.2"
        assert client.prepare(namespace="old", version="2.1").call({}, "which") == "other-2.2"


def test_no_such_method_and_unsupported_version_reach_the_caller(
    transport: dovecote.Transport, topic: str
) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Base10(), Base15(), Other()]):
        client = client_for(transport, topic)
        with pytest.raises(dovecote.NoSuchMethod) as no_method:
            client.call({}, "missing")
        assert no_method.value.method == "missing"
        assert "missing" in str(no_method.value)
        with pytest.raises(dovecote.NoSuchMethod):
            client.prepare(version="1.5").call({}, "only_base")  # 1.5 has no only_base
        with pytest.raises(dovecote.UnsupportedVersion) as unsupported:
            client.prepare(version="1.6").call({}, "which")
        assert unsupported.value.version == "1.6"
        assert "1.6" in str(unsupported.value)
        with pytest.raises(dovecote.UnsupportedVersion):
            client.prepare(version="3.0").call({}, "which")
        with pytest.raises(dovecote.UnsupportedVersion):
            client.prepare(namespace="other", version="2.3").call({}, "which")
        with pytest.raises(dovecote.UnsupportedVersion):
            client.prepare(namespace="nowhere").call({}, "which")
        # both are also MessagingExceptions, and the server still serves
        assert issubclass(type(no_method.value), dovecote.MessagingException)
        assert client.call({}, "which") == "base-1.0"


# -- remote exceptions --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ValueError", "KeyError", "RuntimeError", "TimeoutError",
                                  "ZeroDivisionError", "NotImplementedError"])
def test_builtin_exceptions_come_back_as_their_class(
    transport: dovecote.Transport, topic: str, kind: str
) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
        client = client_for(transport, topic)
        with pytest.raises(getattr(builtins, kind)) as caught:
            client.call({}, "raise_builtin", kind=kind, text="it went wrong")
        exc = caught.value
        assert type(exc) is not getattr(builtins, kind)  # a remote subclass
        assert type(exc).__name__ == f"{kind}_Remote"
        text = str(exc)
        assert "it went wrong" in text
        assert "Traceback" in text
        assert "raise_builtin" in text  # the remote frame, in the remote traceback
        assert not isinstance(exc, dovecote.RemoteError)


def test_allowed_remote_exmods_rebuild_the_class_others_get_remote_error(
    transport: dovecote.Transport, transport_url: str, topic: str
) -> None:
    allowed = dovecote.get_transport(transport_url, allowed_remote_exmods=["remote_errors"])
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
            with pytest.raises(remote_errors.Boom) as boom:
                client_for(allowed, topic).call({}, "raise_boom", text="kaboom")
            assert "kaboom" in str(boom.value)
            assert "raise_boom" in str(boom.value)
            with pytest.raises(remote_errors.Refused) as refused:
                client_for(allowed, topic).call({}, "raise_refused", reason="no", code=7)
            assert refused.value.code == 7
            assert refused.value.reason == "no"

            with pytest.raises(dovecote.RemoteError) as remote:
                client_for(transport, topic).call({}, "raise_boom", text="kaboom")
            assert not isinstance(remote.value, remote_errors.Boom)
            assert remote.value.exc_type == "Boom"
            assert remote.value.value == "kaboom"
            assert "raise_boom" in str(remote.value.traceback)
            assert "kaboom" in str(remote.value)
    finally:
        allowed.cleanup()


def test_expected_exceptions_reach_the_caller(transport: dovecote.Transport, topic: str) -> None:
    class Careful:
        @dovecote.expected_exceptions(KeyError, remote_errors.Boom)
        def lookup(self, ctxt: dict[str, Any], key: str) -> str:
            if key == "boom":
                raise remote_errors.Boom("boom!")
            if key == "value":
                raise ValueError("not expected")
            raise KeyError(key)

    allowed = dovecote.get_transport(str(transport.url.to_text(mask=False)),
                                     allowed_remote_exmods=["remote_errors"])
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Careful()]):
            client = client_for(allowed, topic)
            with pytest.raises(KeyError, match="nope"):
                client.call({}, "lookup", key="nope")
            with pytest.raises(remote_errors.Boom, match="boom!"):
                client.call({}, "lookup", key="boom")
            with pytest.raises(ValueError, match="not expected"):
                client.call({}, "lookup", key="value")
    finally:
        allowed.cleanup()


# -- access policies ------------------------------------------------------------------------
class Parent:
    def inherited(self, ctxt: dict[str, Any]) -> str:
        return "inherited"


class Guarded(Parent):
    target = Target(version="1.0")
    constant = 42

    def public(self, ctxt: dict[str, Any]) -> str:
        return "public"

    def _private(self, ctxt: dict[str, Any]) -> str:
        return "private"

    @dovecote.expose
    def exposed(self, ctxt: dict[str, Any]) -> str:
        return "exposed"


def _refused(client: dovecote.RPCClient, method: str) -> bool:
    try:
        client.call({}, method)
    except dovecote.NoSuchMethod:
        return True
    return False


@pytest.mark.parametrize(("policy", "allowed", "refused"), [
    (None, ["public", "exposed", "inherited"], ["_private"]),
    (dovecote.DefaultRPCAccessPolicy(), ["public", "exposed", "inherited"], ["_private"]),
    (dovecote.ExplicitRPCAccessPolicy(), ["exposed"], ["public", "inherited", "_private"]),
    (dovecote.LegacyRPCAccessPolicy(), ["public", "exposed", "inherited", "_private"], []),
], ids=["none", "default", "explicit", "legacy"])
def test_access_policies(
    transport: dovecote.Transport, topic: str, policy: Any, allowed: list[str],
    refused: list[str],
) -> None:
    never = ["target", "constant", "__init__", "__class__", "__reduce__", "__repr__",
             "__getattribute__", "__dict__", "__subclasshook__", "mro"]
    with serve(transport, Target(topic=topic, server="s1"), [Guarded()],
               access_policy=policy):
        client = client_for(transport, topic)
        for method in allowed:
            assert client.call({}, method) == method.lstrip("_")
        for method in refused + never:
            assert _refused(client, method), f"{method} was callable"


# -- serializers ------------------------------------------------------------------------------
class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


class Ctx:
    def __init__(self, user: str) -> None:
        self.user = user


class PointSerializer(dovecote.Serializer):
    """Points travel as ``{"__point__": [x, y]}``; the context as a ``Ctx``."""

    def serialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        if isinstance(entity, Point):
            return {"__point__": [entity.x, entity.y]}
        return entity

    def deserialize_entity(self, ctxt: dict[str, Any], entity: Any) -> Any:
        if isinstance(entity, dict) and "__point__" in entity:
            return Point(*entity["__point__"])
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        return {"user": ctxt.user}

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return Ctx(ctxt["user"])


def test_custom_serializer_on_both_sides(transport: dovecote.Transport, topic: str) -> None:
    class Geometry:
        def mirror(self, ctxt: Any, point: Any) -> Any:
            assert isinstance(ctxt, Ctx)
            assert isinstance(point, Point)
            return Point(point.y, point.x)

        def who(self, ctxt: Any) -> str:
            return f"{type(ctxt).__name__}:{ctxt.user}"

    with serve(transport, Target(topic=topic, server="s1"), [Geometry()],
               serializer=PointSerializer()):
        client = client_for(transport, topic, serializer=PointSerializer())
        assert client.call(Ctx("bob"), "mirror", point=Point(1, 2)) == Point(2, 1)
        assert client.call(Ctx("eve"), "who") == "Ctx:eve"
        # without the serializer the caller sees what travelled
        raw = client_for(transport, topic)
        assert raw.call({"user": "x"}, "mirror",
                        point={"__point__": [3, 4]}) == {"__point__": [4, 3]}


def test_noop_and_json_payload_serializers(transport: dovecote.Transport, topic: str) -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    with serve(transport, Target(topic=topic, server="s1"), [Echo()],
               serializer=dovecote.NoOpSerializer()):
        noop = client_for(transport, topic, serializer=dovecote.NoOpSerializer())
        assert noop.call({"a": 1}, "echo", value={"k": [1, 2]}) == {"k": [1, 2]}
        assert noop.call({"a": 1}, "context") == {"a": 1}
        json_client = client_for(transport, topic, serializer=dovecote.JsonPayloadSerializer())
        assert json_client.call({}, "echo", value=moment) == "2024-05-06T07:08:09.123456"
        assert sorted(json_client.call({}, "echo", value={3, 1, 2})) == [1, 2, 3]
        assert json_client.call({}, "echo", value=(1, "a")) == [1, "a"]


def test_unserializable_result_becomes_a_failure(
    transport: dovecote.Transport, topic: str
) -> None:
    class Bad:
        def thing(self, ctxt: dict[str, Any]) -> Any:
            return object()

    with serve(transport, Target(topic=topic, server="s1"), [Bad(), Echo()]):
        client = client_for(transport, topic)
        with pytest.raises(TypeError, match="cannot be sent"):
            client.call({}, "thing")
        assert client.call({}, "echo", value=1) == 1


# -- endpoints as actors ------------------------------------------------------------------
class Counter(pykka.ThreadingActor):
    """An endpoint actor that checks it never runs two calls at once."""

    def __init__(self, release: threading.Event | None = None) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.threads: set[str] = set()
        self.busy = False
        self.overlaps = 0
        self.release = release

    def on_start(self) -> None:
        self.my_thread = threading.current_thread().name

    def add(self, ctxt: dict[str, Any], n: int) -> int:
        if self.busy:
            self.overlaps += 1
        self.busy = True
        self.threads.add(threading.current_thread().name)
        time.sleep(0.002)  # widen the window in which an overlap would show
        self.seen.append(n)
        self.busy = False
        return n

    def hold(self, ctxt: dict[str, Any]) -> str:
        assert self.release is not None
        self.release.wait(PATIENCE)
        return "held"

    def report(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return {"seen": self.seen, "threads": sorted(self.threads),
                "overlaps": self.overlaps, "mine": self.my_thread}


@pytest.mark.parametrize("as_proxy", [False, True], ids=["ref", "proxy"])
@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_actor_endpoint_runs_calls_one_at_a_time_in_order_in_its_thread(
    transport: dovecote.Transport, topic: str, actors: list[pykka.ActorRef[Any]],
    as_proxy: bool, executor: str,
) -> None:
    ref = Counter.start()
    actors.append(ref)
    endpoint = ref.proxy() if as_proxy else ref
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [endpoint],
                                     executor=executor, max_workers=8)
    with running(server):
        client = client_for(transport, topic)
        for n in range(30):
            client.cast({}, "add", n=n)
        futures = [client.call_async({}, "add", n=n) for n in range(30, 40)]
        assert [f.get(timeout=PATIENCE) for f in futures] == list(range(30, 40))
        report = client.call({}, "report")
        assert report["seen"] == list(range(40))  # arrival order
        assert report["overlaps"] == 0  # one at a time
        assert report["threads"] == [report["mine"]]  # the actor's own thread


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_a_slow_actor_endpoint_does_not_hold_up_others(
    transport: dovecote.Transport, topic: str, actors: list[pykka.ActorRef[Any]], executor: str,
) -> None:
    release = threading.Event()
    slow = Counter.start(release)
    actors.append(slow)

    class Fast(pykka.ThreadingActor):
        def fast(self, ctxt: dict[str, Any]) -> str:
            return "fast"

    fast = Fast.start()
    actors.append(fast)
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"),
                                     [slow, fast.proxy(), Echo()], executor=executor,
                                     max_workers=2)
    try:
        with running(server):
            client = client_for(transport, topic)
            held = [client.call_async({}, "hold") for _ in range(3)]
            started = time.monotonic()
            for _ in range(5):
                assert client.call({}, "fast") == "fast"
                assert client.call({}, "echo", value=1) == 1
            assert time.monotonic() - started < 3.0
            assert not any(_done(f) for f in held)
            release.set()
            assert [f.get(timeout=PATIENCE) for f in held] == ["held"] * 3
    finally:
        release.set()


def _done(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    return True


def test_actor_endpoint_errors_reach_the_caller(
    transport: dovecote.Transport, topic: str, actors: list[pykka.ActorRef[Any]],
) -> None:
    class Failing(pykka.ThreadingActor):
        def fail(self, ctxt: dict[str, Any]) -> None:
            raise ValueError("actor failed")

        def add(self, ctxt: dict[str, Any], a: int, b: int) -> int:
            return a + b

    ref = Failing.start()
    actors.append(ref)
    with serve(transport, Target(topic=topic, server="s1"), [ref]):
        client = client_for(transport, topic)
        with pytest.raises(ValueError, match="actor failed"):
            client.call({}, "fail")
        with pytest.raises(TypeError, match="wrong arguments"):
            client.call({}, "add", a=1, c=2)
        with pytest.raises(dovecote.NoSuchMethod):
            client.call({}, "on_receive")  # pykka's own methods are not endpoints
        with pytest.raises(dovecote.NoSuchMethod):
            client.call({}, "stop")
        assert client.call({}, "add", a=1, b=2) == 3
        assert ref.is_alive()


# -- invalid targets ------------------------------------------------------------------------
def test_invalid_targets(transport: dovecote.Transport, topic: str) -> None:
    fanout = client_for(transport, topic).prepare(fanout=True)
    with pytest.raises(dovecote.InvalidTarget):
        fanout.call({}, "echo", value=1)
    with pytest.raises(dovecote.InvalidTarget):
        fanout.call_async({}, "echo", value=1)
    no_topic = dovecote.get_rpc_client(transport, Target(), timeout=1)
    with pytest.raises(dovecote.InvalidTarget):
        no_topic.call({}, "echo", value=1)
    with pytest.raises(dovecote.InvalidTarget):
        no_topic.cast({}, "echo", value=1)
    with pytest.raises(dovecote.InvalidTarget):
        no_topic.prepare(server="s1").call({}, "echo", value=1)
    assert issubclass(dovecote.InvalidTarget, dovecote.MessagingException)


def test_wrong_argument_names_say_which(transport: dovecote.Transport, topic: str) -> None:
    with serve(transport, Target(topic=topic, server="s1"), [Echo()]):
        client = client_for(transport, topic)
        with pytest.raises(TypeError, match="wrong arguments for RPC method 'echo'"):
            client.call({}, "echo", valu=1)
        with pytest.raises(TypeError, match="wrong arguments"):
            client.call({}, "echo")
        assert client.call({}, "echo", value=2) == 2


class _RequestContext:
    """Like oslo.context's RequestContext: not a mapping, but has to_dict()."""

    def __init__(self, user: str) -> None:
        self.user = user

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "roles": ["admin"]}


def test_a_context_object_travels_as_its_to_dict(transport: dovecote.Transport,
                                                 topic: str) -> None:
    seen: list[dict[str, Any]] = []

    class Api:
        def whoami(self, ctxt: dict[str, Any]) -> str:
            seen.append(ctxt)
            return str(ctxt["user"])

    with serve(transport, Target(topic=topic), [Api()]):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert client.call(_RequestContext("alice"), "whoami") == "alice"
    assert seen == [{"user": "alice", "roles": ["admin"]}]
