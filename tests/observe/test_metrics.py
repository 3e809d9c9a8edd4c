"""dovecote.metrics: what real calls, casts, failures, timeouts, requeues, dead
letters and reconnects leave in a Prometheus registry, on ``memory://`` and on
the real RabbitMQ; gauges read while endpoints are held on events; label values
that stay bounded whatever a peer sends; enabling, disabling, importing."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
import structlog
from _rpc_support import (
    PATIENCE,
    Gate,
    Recorder,
    delete_queues,
    envelope,
    inject,
    raw_call,
    wait_until,
)
from _rpc_support import running as running_server
from conftest import TRANSPORTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import dovecote
from dovecote import NotificationResult, Target, metrics
from dovecote.observe import _probes

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_deaths")]


# -- fixtures and helpers -------------------------------------------------------------------
@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.broker)])
def transport_url(request: pytest.FixtureRequest, unique: str) -> str:
    """Here only ``memory://`` and RabbitMQ (overrides conftest's every-transport one)."""
    template, broker = TRANSPORTS[request.param]
    if broker is not None:
        request.getfixturevalue(broker)
    return template.format(unique=unique)


@pytest.fixture(autouse=True)
def _forget_queues(request: pytest.FixtureRequest, topic: str) -> Iterator[None]:
    url = (request.getfixturevalue("transport_url")
           if "transport_url" in request.fixturenames else None)
    yield
    if url is not None:
        delete_queues(url, topic, f"{topic}.s1", f"{topic}.info", f"{topic}.info.dead")


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """A fresh registry with dovecote's metrics enabled in it for the test."""
    metrics.disable()
    fresh = CollectorRegistry()
    metrics.enable(fresh)
    yield fresh
    metrics.disable()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value (0 when there is no such series)."""
    return registry.get_sample_value(name, labels) or 0.0


def settles(registry: CollectorRegistry, name: str, expected: float, **labels: str) -> None:
    """Wait until a sample has the value ``expected`` (servers count after they
    replied: a call returns before its dispatch is counted)."""
    seen: list[float] = []

    def reached() -> bool:
        seen[:] = [value(registry, name, **labels)]
        return seen[0] == expected

    assert wait_for(reached), f"{name}{labels} is {seen[0]}, not {expected}"


def wait_for(predicate: Any, timeout: float = PATIENCE) -> bool:
    """Re-check ``predicate`` whenever it may have changed, up to ``timeout``
    (for state no event announces: a counter bumped after a reply, a mailbox)."""
    return wait_until(predicate, timeout=timeout, interval=0.005)


def series(registry: CollectorRegistry, family: str) -> list[dict[str, str]]:
    """The label sets of the samples of ``family`` in the exposition text."""
    text = generate_latest(registry).decode()
    return [sample.labels for parsed in text_string_to_metric_families(text)
            if parsed.name == family for sample in parsed.samples]


# -- RPC ------------------------------------------------------------------------------------
class Api:
    def __init__(self) -> None:
        self.noted = Recorder()
        self.held = threading.Event()
        self.release = threading.Event()

    def echo(self, ctxt: dict[str, Any], value: Any) -> Any:
        return value

    def note(self, ctxt: dict[str, Any], value: Any) -> None:
        self.noted.add(value)

    def boom(self, ctxt: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    @dovecote.expected_exceptions(KeyError)
    def lookup(self, ctxt: dict[str, Any], key: str) -> None:
        raise KeyError(key)

    def hold(self, ctxt: dict[str, Any]) -> str:
        self.held.set()
        assert self.release.wait(PATIENCE), "never released"
        return "late"


def test_calls_casts_failures_and_a_timeout_are_counted(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
) -> None:
    api = Api()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [api],
                                     name=topic)
    with running_server(server):
        client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
        assert [client.call({}, "echo", value=n) for n in range(3)] == [0, 1, 2]
        client.cast({}, "note", value=1)
        client.cast({}, "note", value=2)
        assert sorted(api.noted.wait_for(2)) == [1, 2]  # two workers: in any order
        with pytest.raises(RuntimeError, match="boom"):
            client.call({}, "boom")
        with pytest.raises(KeyError, match="nope"):
            client.call({}, "lookup", key="nope")
        with pytest.raises(dovecote.NoSuchMethod):
            client.call({}, "missing")
        try:
            with pytest.raises(dovecote.MessagingTimeout):
                client.prepare(timeout=0.5).call({}, "hold")
            assert api.held.wait(PATIENCE)
        finally:
            api.release.set()

        server_side = {"server": topic, "kind": "rpc"}
        settles(registry, "dovecote_messages_handled_total", 1, **server_side, method="hold",
                outcome="ok")
        assert value(registry, "dovecote_messages_received_total", **server_side) == 9
        expected = {("echo", "ok"): 3, ("note", "ok"): 2, ("boom", "error"): 1,
                    ("lookup", "expected_error"): 1, ("<unknown>", "rejected"): 1,
                    ("hold", "ok"): 1}
        for (method, outcome), count in expected.items():
            settles(registry, "dovecote_messages_handled_total", count, **server_side,
                    method=method, outcome=outcome)
        handled = {(s["method"], s["outcome"]) for s in
                   series(registry, "dovecote_messages_handled")
                   if s["server"] == topic and s["kind"] == "rpc"}
        assert handled == set(expected)  # "missing" never became a label value
        for method, count in {"echo": 3, "note": 2, "boom": 1, "lookup": 1, "<unknown>": 1,
                              "hold": 1}.items():
            assert value(registry, "dovecote_dispatch_seconds_count", **server_side,
                         method=method) == count

        calls = {"echo": ("ok", 3), "boom": ("remote_error", 1),
                 "lookup": ("remote_error", 1), "missing": ("remote_error", 1),
                 "hold": ("timeout", 1)}
        for method, (outcome, count) in calls.items():
            assert value(registry, "dovecote_rpc_client_call_seconds_count", topic=topic,
                         method=method, outcome=outcome) == count, method
        assert value(registry, "dovecote_rpc_client_call_seconds_sum", topic=topic,
                     method="hold", outcome="timeout") >= 0.5
        # the timed-out call counts in the bucket above 0.5 s, not in any below
        assert value(registry, "dovecote_rpc_client_call_seconds_bucket", topic=topic,
                     method="hold", outcome="timeout", le="0.25") == 0
        assert value(registry, "dovecote_rpc_client_call_seconds_bucket", topic=topic,
                     method="hold", outcome="timeout", le="+Inf") == 1
        client_methods = {s["method"] for s in
                          series(registry, "dovecote_rpc_client_call_seconds")}
        assert "note" not in client_methods  # casts are not calls
        assert not series(registry, "dovecote_listener_reconnects")
        # Everything the client sent, by kind, topic and outcome (no method label).
        sent = {(s["kind"], s["outcome"]): value(registry, "dovecote_messages_sent_total", **s)
                for s in series(registry, "dovecote_messages_sent")
                if s["topic"] == topic and s.keys() == {"kind", "topic", "outcome"}}
        assert sent == {("call", "ok"): 3, ("cast", "ok"): 2, ("call", "remote_error"): 3,
                        ("call", "timeout"): 1}


# -- notifications ----------------------------------------------------------------------------
class Picky:
    """Handles every notification but ``"poison"``, which it asks to requeue."""

    def __init__(self) -> None:
        self.seen = Recorder()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> Any:
        self.seen.add(payload)
        return NotificationResult.REQUEUE if payload == "poison" else None


def test_requeues_and_dead_letters_are_counted(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
) -> None:
    picky = Picky()
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=topic)], [picky], allow_requeue=True, max_redeliveries=1,
        name=topic)
    with running_server(listener):
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
        notifier.info({}, "e", "fine")
        notifier.info({}, "e", "poison")  # requeued once, then dead-lettered
        assert value(registry, "dovecote_messages_sent_total", kind="notification",
                     topic=topic, outcome="ok") == 2
        assert sorted(picky.seen.wait_for(3)) == ["fine", "poison", "poison"]
        # a body with a priority nobody handles: parked under <unknown>, not its name
        inject(transport, f"{topic}.info", envelope({
            "message_id": "m1", "publisher_id": "p", "event_type": "e",
            "priority": "PRIORITY-FROM-A-PEER", "payload": {}, "timestamp": "now"}))

        labels = {"server": topic, "kind": "notification"}
        settles(registry, "dovecote_notifications_dead_lettered_total", 1, server=topic,
                method="<unknown>")
        settles(registry, "dovecote_notifications_dead_lettered_total", 1, server=topic,
                method="info")
        settles(registry, "dovecote_notifications_requeued_total", 1, server=topic,
                method="info")
        assert value(registry, "dovecote_messages_received_total", **labels) == 4
        for outcome in ("handled", "requeued", "dead_lettered"):
            assert value(registry, "dovecote_messages_handled_total", **labels, method="info",
                         outcome=outcome) == 1, outcome
        assert value(registry, "dovecote_messages_handled_total", **labels,
                     method="<unknown>", outcome="dead_lettered") == 1
        assert value(registry, "dovecote_dispatch_seconds_count", **labels,
                     method="info") == 3
        assert {s["method"] for s in series(registry, "dovecote_messages_handled")} == {
            "info", "<unknown>"}


class Batches:
    def __init__(self) -> None:
        self.batches = Recorder()

    def info(self, messages: list[dict[str, Any]]) -> None:
        self.batches.add([m["payload"] for m in messages])


def test_a_batch_counts_its_messages_and_is_timed_once(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
) -> None:
    endpoint = Batches()
    listener = dovecote.get_batch_notification_listener(
        transport, [Target(topic=topic)], [endpoint], batch_size=4, batch_timeout=PATIENCE,
        name=topic)
    with running_server(listener):
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[topic])
        for n in range(4):
            notifier.info({}, "e", n)
        assert endpoint.batches.wait_for(1) == [[0, 1, 2, 3]]
        labels = {"server": topic, "kind": "notification", "method": "info"}
        settles(registry, "dovecote_messages_handled_total", 4, **labels, outcome="handled")
        assert value(registry, "dovecote_dispatch_seconds_count", **labels) == 1


# -- gauges, read at scrape time ------------------------------------------------------------
def test_in_flight_while_workers_are_held(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
) -> None:
    gate = Gate()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [gate],
                                     name=topic, max_workers=3)
    try:
        with running_server(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic))
            for tag in range(3):
                client.cast({}, "hold", tag=tag)
            assert sorted(gate.entered.wait_for(3)) == [0, 1, 2]  # all three held
            assert value(registry, "dovecote_in_flight", server=topic) == 3
            assert server.in_flight == 3  # what the gauge reads
            kinds = {s["actor"] for s in series(registry, "dovecote_mailbox_depth")
                     if s["server"] == topic}
            assert kinds == {"listener", "dispatcher", "worker"}
            assert set(server.mailbox_depths()) == kinds
            gate.open()
            assert wait_for(lambda: value(registry, "dovecote_in_flight", server=topic) == 0)
    finally:
        gate.open()
    # a stopped server is not reported at all
    assert registry.get_sample_value("dovecote_in_flight", {"server": topic}) is None
    assert not [s for s in series(registry, "dovecote_mailbox_depth") if s["server"] == topic]


def test_the_dispatcher_mailbox_of_a_held_blocking_server(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
) -> None:
    """The blocking executor runs endpoints in the dispatcher's loop: while one
    is held, what the listener takes waits in the dispatcher's mailbox."""
    gate = Gate()
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [gate],
                                     name=topic, executor="blocking")
    try:
        with running_server(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic))
            client.cast({}, "hold", tag=0)
            assert gate.entered.wait_for(1) == [0]
            client.cast({}, "hold", tag=1)
            client.cast({}, "hold", tag=2)
            assert wait_for(lambda: value(registry, "dovecote_in_flight", server=topic) == 3)
            assert wait_for(lambda: value(registry, "dovecote_mailbox_depth", server=topic,
                                          actor="dispatcher") >= 1)
            assert "worker" not in {s["actor"] for s in
                                    series(registry, "dovecote_mailbox_depth")
                                    if s["server"] == topic}
            gate.open()
            assert sorted(gate.entered.wait_for(3)) == [0, 1, 2]
    finally:
        gate.open()


class Held(pykka.ThreadingActor):
    """An endpoint actor whose ``hold`` waits for ``release``."""

    def __init__(self, entered: Recorder, release: threading.Event) -> None:
        super().__init__()
        self.entered, self.release = entered, release

    def hold(self, ctxt: dict[str, Any], tag: int) -> None:
        self.entered.add(tag)
        assert self.release.wait(PATIENCE), "never released"


def test_an_endpoint_actor_mailbox(
    transport: dovecote.Transport, topic: str, registry: CollectorRegistry,
    actors: list[pykka.ActorRef[Any]],
) -> None:
    entered, release = Recorder(), threading.Event()
    ref = Held.start(entered, release)
    actors.append(ref)
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [ref],
                                     name=topic)
    try:
        with running_server(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic))
            client.cast({}, "hold", tag=0)
            assert entered.wait_for(1) == [0]
            client.cast({}, "hold", tag=1)
            client.cast({}, "hold", tag=2)
            assert wait_for(lambda: value(registry, "dovecote_mailbox_depth", server=topic,
                                          actor="endpoint") == 2)
            assert value(registry, "dovecote_in_flight", server=topic) == 3
            release.set()
            assert sorted(entered.wait_for(3)) == [0, 1, 2]  # 1 and 2: from two workers
            assert wait_for(lambda: value(registry, "dovecote_mailbox_depth", server=topic,
                                          actor="endpoint") == 0)
    finally:
        release.set()


class Unreadable:
    """A "server" whose every attribute fails, as a bug might make one."""

    name = "unreadable"

    @property
    def running(self) -> bool:
        raise RuntimeError("cannot tell")


def test_a_scrape_never_fails_because_of_a_server(registry: CollectorRegistry) -> None:
    broken = Unreadable()
    _probes.track_server(broken)  # type: ignore[arg-type]
    try:
        with structlog.testing.capture_logs() as logs:
            text = generate_latest(registry).decode()
            generate_latest(registry)
    finally:
        del broken
    assert "# TYPE dovecote_in_flight gauge" in text
    assert "unreadable" not in text
    failed = [e for e in logs if e["event"] == "metrics.collect_failed"]
    assert len(failed) == 1  # logged once, not at every scrape
    assert "cannot tell" in failed[0]["error"]


# -- bounded labels -------------------------------------------------------------------------
HOSTILE = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20).map(
        lambda s: f'{s}"}}\n# HELP x'),
    st.integers(), st.none(), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def test_hostile_method_names_become_unknown(topic: str, registry: CollectorRegistry) -> None:
    """Requests from a raw client naming methods nobody has: whatever the name,
    the label is ``<unknown>``, so the series stay few."""
    transport = dovecote.get_transport(f"memory://{topic}")
    sent: list[Any] = []
    server = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [Api()],
                                     name=topic, control=False)
    try:
        with running_server(server):

            @settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])
            @given(method=HOSTILE)
            def send(method: Any) -> None:
                if method in ("echo", "note", "boom", "lookup", "hold"):
                    return
                reply = raw_call(transport, topic, {"method": method, "args": {}})
                assert reply.get("failure"), reply
                sent.append(method)

            send()
            labels = {"server": topic, "kind": "rpc"}
            settles(registry, "dovecote_messages_handled_total", len(sent), **labels,
                    method="<unknown>", outcome="rejected")
    finally:
        transport.cleanup()
    assert len({repr(m) for m in sent}) > 50  # many distinct names went in
    for family in ("dovecote_messages_handled", "dovecote_dispatch_seconds"):
        assert {s["method"] for s in series(registry, family)} == {"<unknown>"}, family
    assert len(series(registry, "dovecote_messages_handled")) == 1  # one series


def test_client_labels_are_capped(topic: str, registry: CollectorRegistry) -> None:
    probe = metrics.enable(registry)  # enabled already: the same probe
    probe.max_client_label_sets = 2
    transport = dovecote.get_transport(f"memory://{topic}")
    try:
        with running_server(dovecote.get_rpc_server(transport, Target(topic=topic), [Api()],
                                                    name=topic)), \
                running_server(dovecote.get_rpc_server(transport, Target(topic=f"{topic}2"),
                                                       [Api()], name=f"{topic}2")):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            other = dovecote.get_rpc_client(transport, Target(topic=f"{topic}2"),
                                            timeout=PATIENCE)
            client.call({}, "echo", value=1)
            with pytest.raises(dovecote.NoSuchMethod):
                client.call({}, "made_up_0")  # the second pair: the cap is reached
            for n in range(1, 4):
                with pytest.raises(dovecote.NoSuchMethod):
                    client.call({}, f"made_up_{n}")
            other.call({}, "echo", value=1)  # a topic not seen before the cap
            client.call({}, "echo", value=2)  # an admitted pair keeps its series
    finally:
        transport.cleanup()
    name = "dovecote_rpc_client_call_seconds_count"
    assert value(registry, name, topic=topic, method="echo", outcome="ok") == 2
    assert value(registry, name, topic=topic, method="made_up_0", outcome="remote_error") == 1
    assert value(registry, name, topic=topic, method="<other>", outcome="remote_error") == 3
    assert value(registry, name, topic="<other>", method="<other>", outcome="ok") == 1
    pairs = {(s["topic"], s["method"])
             for s in series(registry, "dovecote_rpc_client_call_seconds")}
    assert pairs == {(topic, "echo"), (topic, "made_up_0"), (topic, "<other>"),
                     ("<other>", "<other>")}


def test_sent_topics_are_capped_and_a_failed_send_counts(
        topic: str, registry: CollectorRegistry) -> None:
    """Topics beyond ``max_client_label_sets`` count under ``<other>``; a send
    the transport refuses counts as ``error``."""
    probe = metrics.enable(registry)  # enabled already: the same probe
    probe.max_client_label_sets = 2
    transport = dovecote.get_transport(f"memory://{topic}")
    for n in range(4):  # casts need no server on memory://
        dovecote.get_rpc_client(transport, Target(topic=f"{topic}{n}")).cast({}, "m")
    dovecote.get_rpc_client(transport, Target(topic=f"{topic}0")).cast({}, "m")
    transport.cleanup()
    with pytest.raises(dovecote.MessageDeliveryFailure):
        dovecote.Notifier(transport, "p", topics=[f"{topic}0"]).info({}, "e", {})
    name = "dovecote_messages_sent_total"
    assert value(registry, name, kind="cast", topic=f"{topic}0", outcome="ok") == 2
    assert value(registry, name, kind="cast", topic=f"{topic}1", outcome="ok") == 1
    assert value(registry, name, kind="cast", topic="<other>", outcome="ok") == 2
    assert value(registry, name, kind="notification", topic=f"{topic}0", outcome="error") == 1
    assert {s["topic"] for s in series(registry, "dovecote_messages_sent")} == {
        f"{topic}0", f"{topic}1", "<other>"}


def test_a_dispatch_without_a_server(registry: CollectorRegistry) -> None:
    probe = metrics.enable(registry)
    probe.dispatch_finished(None, _probes.Dispatched(None, "rpc", "echo", "ok", 0.001))
    assert value(registry, "dovecote_messages_handled_total", server="unknown", kind="rpc",
                 method="echo", outcome="ok") == 1


def test_a_dispatch_reported_in_parts_is_timed_once(registry: CollectorRegistry) -> None:
    """A batch group partly requeued, partly parked is reported once per outcome,
    the later reports untimed: every message counted, the dispatch timed once."""
    probe = metrics.enable(registry)
    for outcome, timed in (("requeued", True), ("dead_lettered", False)):
        probe.dispatch_finished(None, _probes.Dispatched(
            None, "notification", "info", outcome, 0.002, count=2, timed=timed))
    labels = {"server": "unknown", "kind": "notification", "method": "info"}
    assert value(registry, "dovecote_dispatch_seconds_count", **labels) == 1
    assert value(registry, "dovecote_notifications_requeued_total", server="unknown",
                 method="info") == 2
    assert value(registry, "dovecote_notifications_dead_lettered_total", server="unknown",
                 method="info") == 2


# -- reconnects, on RabbitMQ --------------------------------------------------------------
@pytest.mark.broker
def test_a_listener_reconnect_is_counted(
    rabbitmq: str, topic: str, registry: CollectorRegistry,
) -> None:
    from test_kombu_faults import close_my_connections

    transport = dovecote.get_transport(
        f"{rabbitmq}?rabbit_retry_interval=0.1&rabbit_retry_backoff=0.1"
        "&rabbit_interval_max=0.5&heartbeat_timeout_threshold=1&connect_timeout=2")
    try:
        with running_server(dovecote.get_rpc_server(
                transport, Target(topic=topic, server="s1"), [Api()], name=topic)):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=10)
            assert client.call({}, "echo", value="before") == "before"
            assert not series(registry, "dovecote_listener_reconnects")
            assert close_my_connections() >= 1  # the broker closes them: a real fault
            assert wait_for(lambda: value(registry, "dovecote_listener_reconnects_total",
                                          transport="rabbit") >= 1, timeout=15)
            assert client.call({}, "echo", value="after") == "after"
    finally:
        transport.cleanup()
        delete_queues(rabbitmq, topic, f"{topic}.s1")
    assert {s["transport"] for s in series(registry, "dovecote_listener_reconnects")} == {
        "rabbit"}


# -- enabling, disabling, importing ---------------------------------------------------------
def test_enable_twice_counts_once_and_disable_stops(topic: str) -> None:
    registry = CollectorRegistry()
    transport = dovecote.get_transport(f"memory://{topic}")
    try:
        probe = metrics.enable(registry)
        assert metrics.enable(registry) is probe  # no "Duplicated timeseries"
        assert _probes.probes.count(probe) == 1
        with pytest.raises(ValueError, match="another registry"):
            metrics.enable(CollectorRegistry())
        labels = {"server": topic, "kind": "rpc", "method": "echo", "outcome": "ok"}
        with running_server(dovecote.get_rpc_server(transport, Target(topic=topic), [Api()],
                                                    name=topic)):
            client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
            client.call({}, "echo", value=1)
            settles(registry, "dovecote_messages_handled_total", 1, **labels)
            assert value(registry, "dovecote_messages_received_total", server=topic,
                         kind="rpc") == 1

            metrics.disable()
            assert probe not in _probes.probes
            assert "dovecote_" not in generate_latest(registry).decode()  # unregistered
            client.call({}, "echo", value=2)
        kept = CollectorRegistry()  # the old metric objects: nothing more was counted
        kept.register(probe.messages_handled)
        assert value(kept, "dovecote_messages_handled_total", **labels) == 1
        metrics.disable()  # again: nothing happens
    finally:
        metrics.disable()
        transport.cleanup()


def test_enable_without_a_registry_uses_the_default_one() -> None:
    metrics.disable()
    try:
        probe = metrics.enable()
        assert probe.registry is REGISTRY
        assert metrics.enable(REGISTRY) is probe
        probe.listener_reconnected("rabbit")
        assert value(REGISTRY, "dovecote_listener_reconnects_total", transport="rabbit") == 1
        metrics.disable()
        assert REGISTRY.get_sample_value("dovecote_listener_reconnects_total",
                                          {"transport": "rabbit"}) is None
        metrics.enable()  # unregistered before: no "Duplicated timeseries" now
    finally:
        metrics.disable()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)


def test_importing_registers_nothing() -> None:
    result = run_python(
        "import prometheus_client, dovecote.metrics\n"
        "from dovecote.observe import _probes\n"
        "assert _probes.probes == (), _probes.probes\n"
        "names = [m.name for m in prometheus_client.REGISTRY.collect()]\n"
        "assert not [n for n in names if n.startswith('dovecote')], names\n"
        "print('clean')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_without_prometheus_client_the_import_error_says_what_to_install() -> None:
    result = run_python(
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "try:\n"
        "    import dovecote.metrics\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported')\n")
    assert result.returncode == 0, result.stderr
    assert "pip install 'dovecote[metrics]'" in result.stdout
