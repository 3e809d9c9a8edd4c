"""dovecote.testing and the pytest plugin: a user's test file run through pytester
(on memory:// and, with --dovecote-url, on RabbitMQ), the example, and
call_endpoint checked against a real client on memory:// case by case and by
property."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

import pykka
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dovecote
from dovecote.drivers.memory import get_broker
from dovecote.observe._probes import Dispatched
from dovecote.testing import (
    SentNotifications,
    call_endpoint,
    forget_topic,
    running,
    unique_topic,
    wait_for,
)

pytest_plugins = ["pytester"]

#: A user's test file: each fixture and helper, passing and failing (``test_fail_*``).
USER_TESTS = '''
import os
import threading

import pykka
import pytest

import dovecote
from dovecote.testing import call_endpoint, running, wait_for


class Overdrawn(Exception):
    """Part of the contract of Accounts.withdraw."""


class Accounts:
    target = dovecote.Target(namespace="bank", version="1.2")

    def __init__(self, notifier=None):
        self.balance = 10
        self.notifier = notifier

    def deposit(self, ctxt, amount):
        self.balance += amount
        if self.notifier is not None:
            self.notifier.info(ctxt, "bank.deposit", {"amount": amount})
        return self.balance

    @dovecote.expected_exceptions(Overdrawn)
    def withdraw(self, ctxt, amount):
        if amount > self.balance:
            raise Overdrawn(amount)
        self.balance -= amount
        return (self.balance, amount)


class Counter(pykka.ThreadingActor):
    def incr(self, ctxt, by=1):
        return by + 1


class Stuck:
    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self, ctxt):
        self.entered.set()
        self.release.wait(30)
        return "released"


class Audit:
    def __init__(self):
        self.seen = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append(payload)
        return len(self.seen)


def server_for(transport, topic, endpoints, **kwargs):
    return dovecote.get_rpc_server(transport, dovecote.Target(topic=topic), endpoints, **kwargs)


def client_for(transport, topic):
    return dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=10).prepare(
        namespace="bank", version="1.2")


def test_transport_and_topic(dovecote_transport, dovecote_url, dovecote_topic):
    assert dovecote_transport.url.transport == os.environ["EXPECTED_TRANSPORT"]
    assert str(dovecote_transport.url).split("://")[0] == dovecote_url.split("://")[0]
    assert dovecote_topic.startswith("test_")


@pytest.mark.parametrize("executor", ["threading", "blocking"])
def test_call_through_a_running_server(dovecote_transport, dovecote_topic, executor):
    server = server_for(dovecote_transport, dovecote_topic, [Accounts()], executor=executor)
    with running(server) as started:
        assert started is server and server.running
        assert client_for(dovecote_transport, dovecote_topic).call({}, "deposit", amount=5) == 15
    assert not server.running


def test_wait_for_casts(dovecote_transport, dovecote_topic):
    accounts = Accounts()
    server = server_for(dovecote_transport, dovecote_topic, [accounts])
    client = client_for(dovecote_transport, dovecote_topic)
    with running(server):
        with wait_for(server, "withdraw", count=2) as waited:
            client.cast({}, "withdraw", amount=3)
            client.cast({}, "withdraw", amount=30)
        assert sorted(record.outcome for record in waited.records) == ["expected_error", "ok"]
        assert [type(e).__name__ for e in waited.errors] == ["Overdrawn"]
        assert (7, 3) in waited.results  # what the method returned, before the wire
        with wait_for(accounts, "deposit") as waited:
            client.cast({}, "deposit", amount=1)
        assert waited.results == [8]
        with wait_for(server) as waited:
            client.cast({}, "no_such_method")
        assert waited.records[0].outcome == "rejected"
        assert isinstance(waited.errors[0], dovecote.NoSuchMethod)


def test_wait_for_counts_nothing_that_began_before(dovecote_transport, dovecote_topic):
    server = server_for(dovecote_transport, dovecote_topic, [Accounts()])
    client = client_for(dovecote_transport, dovecote_topic)
    with running(server):
        for _ in range(50):  # a server reports a call after it replied: not to this waiter
            client.call({}, "deposit", amount=1)
            with wait_for(server) as waited:
                client.cast({}, "withdraw", amount=1)
            assert [record.name for record in waited.records] == ["withdraw"]


def test_wait_for_an_actor_endpoint(dovecote_transport, dovecote_topic):
    ref = Counter.start()
    try:
        server = server_for(dovecote_transport, dovecote_topic, [ref.proxy()])
        client = dovecote.get_rpc_client(dovecote_transport,
                                         dovecote.Target(topic=dovecote_topic))
        with running(server), wait_for(ref, "incr") as waited:
            client.cast({}, "incr", by=2)
        assert waited.results == [3]
    finally:
        ref.stop()


def test_notifications(dovecote_transport, dovecote_topic, dovecote_notifications):
    audit = Audit()
    listener = dovecote.get_notification_listener(
        dovecote_transport, [dovecote.Target(topic=dovecote_topic)], [audit])
    notifier = dovecote.Notifier(dovecote_transport, publisher_id="bank.1",
                                 driver=["messagingv2", "test"], topics=[dovecote_topic])
    with running(listener), wait_for(listener, "INFO") as waited:
        notifier.info({}, "bank.opened", {"id": 1})
    assert waited.results == [1]
    assert waited.records[0].kind == "notification" and waited.records[0].ok
    assert audit.seen == [{"id": 1}]
    sent = dovecote_notifications.assert_sent("bank.opened", payload={"id": 1}, priority="info")
    assert sent.publisher_id == "bank.1" and sent.topics == [dovecote_topic]
    assert len(dovecote_notifications.by_event_type("bank.opened")) == 1
    assert dovecote_notifications.by_priority("INFO") == [sent]
    assert dovecote_notifications[-1] == sent and list(dovecote_notifications) == [sent]
    dovecote_notifications.assert_not_sent("bank.closed")
    dovecote_notifications.clear()
    assert dovecote_notifications.all() == []


def test_notifications_start_empty(dovecote_notifications):
    assert len(dovecote_notifications) == 0


def test_call_endpoint(dovecote_notifications):
    accounts = Accounts(dovecote.Notifier(None, driver="test"))
    assert call_endpoint(accounts, "withdraw", namespace="bank", version="1.1", amount=4) == [6, 4]
    with pytest.raises(Overdrawn):
        call_endpoint(accounts, "withdraw", namespace="bank", version="1.2", amount=99)
    with pytest.raises(dovecote.UnsupportedVersion):
        call_endpoint(accounts, "withdraw", amount=1)
    with pytest.raises(dovecote.NoSuchMethod):
        call_endpoint(accounts, "close", namespace="bank")
    call_endpoint(accounts, "deposit", {"user": "u"}, namespace="bank", amount=1)
    dovecote_notifications.assert_sent("bank.deposit", payload={"amount": 1})


def test_fail_wait_for_times_out(dovecote_transport, dovecote_topic):
    server = server_for(dovecote_transport, dovecote_topic, [Accounts()])
    client = client_for(dovecote_transport, dovecote_topic)
    with running(server), wait_for(server, "deposit", count=2, timeout=0.5):
        with wait_for(server, count=2, timeout=10):  # both handled, however slow the machine
            client.cast({}, "deposit", amount=1)
            client.cast({}, "withdraw", amount=1)


def test_fail_server_does_not_stop(dovecote_transport, dovecote_topic):
    stuck = Stuck()
    server = server_for(dovecote_transport, dovecote_topic, [stuck])
    try:
        with running(server, timeout=0.5):
            dovecote.get_rpc_client(dovecote_transport, dovecote.Target(
                topic=dovecote_topic)).cast({}, "hold")
            assert stuck.entered.wait(10)
    finally:
        stuck.release.set()
        assert server.wait(10)


def test_fail_notification_not_sent(dovecote_notifications):
    dovecote.Notifier(None, publisher_id="bank.1", driver="test").warn({}, "bank.low", {"left": 1})
    dovecote_notifications.assert_sent("bank.closed")
'''

#: What the user's file gives on any transport.
USER_OUTCOMES = {"passed": 9, "failed": 3}
USER_FAILURES = [
    "*test_fail_wait_for_times_out*",
    ("E * AssertionError: wait_for(server 'test_*', 'deposit'): 1 of 2 handled within 0.5s "
     "(other dispatches meanwhile: rpc 'withdraw' -> ok on server 'test_*')"),
    "*test_fail_server_does_not_stop*",
    ("E * AssertionError: server 'test_*' did not stop within 0.5s of stop(): still alive: "
     "1 dispatcher, *; * (an endpoint that has not returned keeps its server from stopping)"),
    "*test_fail_notification_not_sent*",
    ("E * AssertionError: expected a notification with event_type='bank.closed'; 0 matched. "
     "Sent through the 'test' driver (1):"),
    "E * WARN 'bank.low' from 'bank.1': {'left': 1}",
]


def _run_user_tests(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str,
                    transport: str) -> pytest.RunResult:
    monkeypatch.delenv("DOVECOTE_TEST_URL", raising=False)
    monkeypatch.setenv("EXPECTED_TRANSPORT", transport)
    pytester.makepyfile(test_user_service=USER_TESTS)
    # A process of its own: the probes and the plugin stay out of this session.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_a_users_tests_on_memory(pytester: pytest.Pytester,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run_user_tests(pytester, monkeypatch, transport="memory")
    result.assert_outcomes(**USER_OUTCOMES)
    result.stdout.fnmatch_lines(USER_FAILURES, consecutive=False)


@pytest.mark.broker
def test_the_same_tests_on_rabbitmq(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                    rabbitmq: str) -> None:
    result = _run_user_tests(pytester, monkeypatch, f"--dovecote-url={rabbitmq}",
                             transport="rabbit")
    result.assert_outcomes(**USER_OUTCOMES)
    result.stdout.fnmatch_lines(["dovecote: transports on rabbit://guest:****@127.0.0.1:5672/",
                                 *USER_FAILURES], consecutive=False)
    assert "queue.delete_failed" not in result.stdout.str() + result.stderr.str()


def test_the_example_passes() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DOVECOTE_TEST_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "examples/test_service_example.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


URL_TESTS = '''
import os

SEEN = []


def test_url(dovecote_url):
    SEEN.append(dovecote_url)
    expected = os.environ.get("EXPECTED_URL")
    if expected:
        assert dovecote_url == expected
    else:
        assert dovecote_url.startswith("memory://dovecote-")


def test_each_test_has_its_own_memory_broker(dovecote_url):
    SEEN.append(dovecote_url)
    if not os.environ.get("EXPECTED_URL"):
        assert SEEN[0] != SEEN[1]
'''


@pytest.mark.parametrize(("option", "variable", "expected"), [
    (None, None, None),
    (None, "memory://from-env", "memory://from-env"),
    ("memory://from-option", "memory://from-env", "memory://from-option"),
])
def test_the_url_comes_from_the_option_or_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
    option: str | None, variable: str | None, expected: str | None,
) -> None:
    for name, value in (("DOVECOTE_TEST_URL", variable), ("EXPECTED_URL", expected)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    pytester.makepyfile(test_dovecote_plugin_urls=URL_TESTS)
    args = ["-p", "no:cacheprovider"] + ([f"--dovecote-url={option}"] if option else [])
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    if expected is None:
        assert "dovecote: transports" not in result.stdout.str()
    else:
        result.stdout.fnmatch_lines([f"dovecote: transports on {expected}"])


def test_dovecote_testing_imports_without_pytest() -> None:
    code = ("import sys; sys.modules['pytest'] = None; import dovecote.testing as t; "
            "print(sorted(t.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "call_endpoint" in done.stdout


def test_forget_topic_on_memory() -> None:
    name = f"forget-{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(f"memory://{name}")
    topic = unique_topic()
    try:
        listener = dovecote.get_notification_listener(
            transport, [dovecote.Target(topic=topic)], [Audit()])
        server = dovecote.get_rpc_server(transport, dovecote.Target(topic=topic), [Echo()])
        with running(server), running(listener):
            pass
        assert {topic, f"{topic}.info"} <= set(get_broker(name).queue_names())
        forget_topic(transport, topic)
        assert not [q for q in get_broker(name).queue_names() if q.startswith(topic)]
    finally:
        transport.cleanup()


@pytest.mark.broker
def test_forget_topic_on_rabbitmq(rabbit_transport: dovecote.Transport) -> None:
    import amqp

    topic = unique_topic()
    listener = dovecote.get_notification_listener(
        rabbit_transport, [dovecote.Target(topic=topic)], [Audit()])
    server = dovecote.get_rpc_server(rabbit_transport, dovecote.Target(topic=topic), [Echo()])
    with running(server), running(listener):
        pass
    forget_topic(rabbit_transport, topic)
    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        for queue in (topic, f"{topic}.info"):
            channel = conn.channel()
            with pytest.raises(amqp.exceptions.NotFound):
                channel.queue_declare(queue, passive=True)
    finally:
        conn.close()


# -- running ----------------------------------------------------------------------------


class _FailingBlockingServer:
    """Enough of a server for running(): a blocking one whose start() fails."""

    executor = "blocking"
    name = "broken"
    running = False

    def start(self) -> None:
        raise ConnectionError("the broker cannot be reached")

    def wait_ready(self, timeout: float | None = None) -> bool:
        return False

    def stop(self) -> None:
        pass


def test_running_raises_what_a_blocking_start_raised() -> None:
    with pytest.raises(ConnectionError, match="cannot be reached"), running(
            _FailingBlockingServer()):  # type: ignore[arg-type]
        pytest.fail("the block ran")


def test_running_refuses_a_running_server() -> None:
    transport = dovecote.get_transport(f"memory://{uuid.uuid4().hex}")
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic="t"), [Echo()])
    try:
        with running(server), pytest.raises(RuntimeError, match="already running"), running(
                server):
            pass
    finally:
        transport.cleanup()


def test_wait_for_counts_what_began_while_it_waited() -> None:
    """A dispatch that began before the block (no token from this waiter, and
    older than the block) is not counted; one that began inside it is, with or
    without a token (a request refused before dispatch began has none)."""
    server = object()
    with pytest.raises(AssertionError, match="0 of 1 handled"), wait_for(
            server, timeout=0.1) as waited:
        waited.dispatch_finished(None, Dispatched(server, "rpc", "add", "ok", seconds=60.0))
    with wait_for(server, count=2) as waited:
        token = waited.dispatch_started(server, "rpc", "add", ())
        waited.dispatch_finished(token, Dispatched(server, "rpc", "add", "ok", seconds=60.0))
        waited.dispatch_finished(None, Dispatched(server, "rpc", "<unknown>", "rejected",
                                                  seconds=0.0))
    assert [record.outcome for record in waited.records] == ["ok", "rejected"]


def test_wait_for_needs_a_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        wait_for(object(), count=0)


# -- call_endpoint ------------------------------------------------------------------------


class Boom(Exception):
    """A module-level exception: rebuilt as its own class by default."""


class Echo:
    def echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def fail(self, ctxt: dict[str, Any]) -> None:
        raise Boom("it failed", 7)

    @dovecote.expected_exceptions(Boom)
    def fail_expected(self, ctxt: dict[str, Any]) -> None:
        raise Boom("as declared")

    def fail_builtin(self, ctxt: dict[str, Any]) -> None:
        raise ValueError("bad value")

    def fail_local(self, ctxt: dict[str, Any]) -> None:
        class Local(Exception):
            pass

        raise Local("nobody can rebuild me")

    def unsendable(self, ctxt: dict[str, Any]) -> Any:
        return object()

    def with_version(self, ctxt: dict[str, Any], version: str, timeout: int) -> list[Any]:
        return [version, timeout]

    def _hidden(self, ctxt: dict[str, Any]) -> str:
        return "hidden"


class Versioned(Echo):
    target = dovecote.Target(namespace="ns", version="2.3")


class Audit:
    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        pass


def test_results_travel_as_json() -> None:
    assert call_endpoint(Echo(), "echo", value=(1, "a", {"k": (2,)})) == [1, "a", {"k": [2]}]
    day = datetime.date(2024, 5, 1)
    assert call_endpoint(Echo(), "echo", value=day) == "2024-05-01"
    assert call_endpoint(Echo(), "context", {"user": "alice"}) == {"user": "alice"}


def test_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot be sent"):
        call_endpoint(Echo(), "unsendable")
    with pytest.raises(TypeError, match="not JSON serializable"):  # raised as a client would
        call_endpoint(Echo(), "echo", value=object())


def test_access_policy() -> None:
    with pytest.raises(dovecote.NoSuchMethod) as caught:
        call_endpoint(Echo(), "_hidden")
    assert isinstance(caught.value, AttributeError)
    assert call_endpoint(Echo(), "_hidden",
                         access_policy=dovecote.LegacyRPCAccessPolicy()) == "hidden"

    class Explicit:
        @dovecote.expose
        def shown(self, ctxt: Any) -> str:
            return "shown"

        def unexposed(self, ctxt: Any) -> str:
            return "unexposed"

    policy = dovecote.ExplicitRPCAccessPolicy()
    assert call_endpoint(Explicit(), "shown", access_policy=policy) == "shown"
    with pytest.raises(dovecote.NoSuchMethod, match="unexposed"):
        call_endpoint(Explicit(), "unexposed", access_policy=policy)


def test_namespace_and_version() -> None:
    assert call_endpoint(Versioned(), "echo", namespace="ns", version="2.1", value=1) == 1
    assert call_endpoint(Versioned(), "echo", namespace="ns", version="2.3", value=2) == 2
    for namespace, version in (("ns", "2.4"), ("ns", "1.0"), ("ns", None), (None, "2.0"),
                               ("other", "2.0")):
        with pytest.raises(dovecote.UnsupportedVersion) as caught:
            call_endpoint(Versioned(), "echo", namespace=namespace, version=version)
        assert caught.value.version == (version or "1.0")
    with pytest.raises(dovecote.NoSuchMethod):
        call_endpoint(Versioned(), "missing", namespace="ns", version="2.0")


def test_arguments_named_like_options() -> None:
    assert call_endpoint(Echo(), "with_version", args={"version": "9.9", "timeout": 3}) == [
        "9.9", 3]
    with pytest.raises(TypeError, match="wrong arguments for RPC method 'with_version'"):
        call_endpoint(Echo(), "with_version", args={"version": "1"})


def test_expected_and_unexpected_exceptions() -> None:
    with pytest.raises(Boom, match="as declared") as caught:
        call_endpoint(Echo(), "fail_expected")
    assert type(caught.value).__name__ == "Boom_Remote"
    with pytest.raises(Boom) as caught:
        call_endpoint(Echo(), "fail")
    assert caught.value.args == ("it failed", 7)
    assert "Traceback" in str(caught.value)  # the remote traceback, as a caller sees it
    with pytest.raises(dovecote.RemoteError) as remote:
        call_endpoint(Echo(), "fail", allowed_remote_exmods=())
    assert remote.value.exc_type == "Boom"
    assert remote.value.value == "('it failed', 7)" or "it failed" in str(remote.value.value)
    with pytest.raises(ValueError, match="bad value"):
        call_endpoint(Echo(), "fail_builtin", allowed_remote_exmods=())
    with pytest.raises(dovecote.RemoteError) as local:
        call_endpoint(Echo(), "fail_local")
    assert local.value.exc_type == "Local"


class _Ctx:
    def __init__(self, user: str) -> None:
        self.user = user


class DateSerializer(dovecote.NoOpSerializer):
    """Dates travel as tagged text; the context arrives as an object."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, datetime.date):
            return {"date": entity.isoformat()}
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        if isinstance(entity, dict) and set(entity) == {"date"}:
            if entity["date"] == "broken":
                raise ValueError("the serializer refused it")
            return datetime.date.fromisoformat(entity["date"])
        return entity

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return _Ctx(**ctxt)


class Calendar:
    def later(self, ctxt: _Ctx, day: datetime.date, days: int) -> Any:
        assert isinstance(ctxt, _Ctx)
        return day + datetime.timedelta(days=days)


def test_serializer() -> None:
    serializer = DateSerializer()
    day = datetime.date(2024, 2, 28)
    assert call_endpoint(Calendar(), "later", {"user": "u"}, serializer=serializer, day=day,
                         days=2) == datetime.date(2024, 3, 1)
    with pytest.raises(ValueError, match="serializer refused"):
        call_endpoint(Calendar(), "later", {"user": "u"}, serializer=serializer,
                      day={"date": "broken"}, days=1)


class CounterActor(pykka.ThreadingActor):
    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.count = 0
        self.release = release

    def incr(self, ctxt: dict[str, Any], by: int = 1) -> int:
        self.count += by
        return self.count

    def boom(self, ctxt: dict[str, Any]) -> None:
        raise KeyError("missing")

    def slow(self, ctxt: dict[str, Any]) -> str:
        self.release.wait(10)
        return "done"


def test_actor_endpoints() -> None:
    release = threading.Event()
    ref = CounterActor.start(release)
    try:
        assert call_endpoint(ref, "incr", by=2) == 2
        assert call_endpoint(ref.proxy(), "incr") == 3
        with pytest.raises(KeyError):
            call_endpoint(ref, "boom")
        with pytest.raises(dovecote.NoSuchMethod):
            call_endpoint(ref, "on_receive")  # pykka's own methods are never RPC methods
        with pytest.raises(dovecote.MessagingTimeout, match=r"no reply from 'slow' within 0\.2s"):
            call_endpoint(ref, "slow", timeout=0.2)
    finally:
        release.set()
        ref.stop()


def test_wait_for_counts_call_endpoint() -> None:
    echo, other = Echo(), Echo()
    with wait_for(echo, "echo", count=2) as waited:
        call_endpoint(other, "echo", value=0)
        call_endpoint(echo, "echo", value=1)
        call_endpoint(echo, "echo", value=(2,))
    assert waited.results == [1, [2]]  # (2,) arrived as JSON: a list
    assert [record.server for record in waited.records] == [None, None]


# -- call_endpoint against a real client, by property --------------------------------------


@pytest.fixture(scope="module")
def real_client() -> Any:
    """A client of a server on memory:// serving ``Versioned``, allowing this
    module's exceptions (what call_endpoint allows by default)."""
    transport = dovecote.get_transport(f"memory://{uuid.uuid4().hex}",
                                       allowed_remote_exmods=[__name__])
    topic = unique_topic()
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic=topic), [Versioned()],
                                     control=False)
    with running(server):
        yield dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=10)
    transport.cleanup()


def _outcome(call: Any) -> tuple[str, Any]:
    """A call's result, or the class its error derives from and the first line."""
    try:
        return "result", call()
    except Exception as exc:
        base = type(exc).__mro__[1] if type(exc).__name__.endswith("_Remote") else type(exc)
        return base.__name__, str(exc).splitlines()[0]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["echo", "_hidden", "missing", "fail", "fail_expected",
                               "fail_builtin", "context"]),
       namespace=st.sampled_from([None, "ns", "other"]),
       version=st.sampled_from([None, "1.0", "2.0", "2.3", "2.4", "3.1"]),
       value=JSON)
def test_call_endpoint_answers_as_a_real_server_does(
    real_client: Any, method: str, namespace: str | None, version: str | None, value: Any,
) -> None:
    kwargs = {"value": value} if method == "echo" else {}
    client = real_client.prepare(namespace=namespace, version=version)
    expected = _outcome(lambda: client.call({"user": "u"}, method, **kwargs))
    found = _outcome(lambda: call_endpoint(Versioned(), method, {"user": "u"},
                                           namespace=namespace, version=version, **kwargs))
    assert found == expected
    if method == "echo" and expected[0] == "result":
        assert found[1] == json.loads(json.dumps(value))


def test_sent_notifications_without_the_fixture() -> None:
    sent = SentNotifications()
    sent.clear()
    notifier = dovecote.Notifier(None, publisher_id="p", driver="test")  # type: ignore[arg-type]
    notifier.warning({"user": "u"}, "disk.low", {"left": 3})
    record = sent.assert_sent("disk.low", priority="warning", payload={"left": 3},
                              publisher_id="p", count=1)
    assert record.priority == "WARN"
    assert record.ctxt == {"user": "u"}
    with pytest.raises(AssertionError, match=r"expected 2 notification\(s\) with "
                                             r"event_type='disk.low'; 1 matched"):
        sent.assert_sent("disk.low", count=2)
    with pytest.raises(AssertionError, match=r"expected no 'disk\.low' notification; 1 sent"):
        sent.assert_not_sent("disk.low")
    sent.clear()
    with pytest.raises(AssertionError, match="Nothing was sent through the 'test' driver"):
        sent.assert_sent("disk.low")
