"""``notification_queue_ttl`` and ``notification_queue_max_length``: notification
queues keep what no listener takes (as oslo.messaging's do) unless these bound
them. On RabbitMQ (``rabbit://`` and ``amqp1://``, each in a vhost of the test's
own): the ``<topic>.<priority>`` queue a notifier declares and a listener's pool
carry ``x-message-ttl`` / ``x-max-length``, dead-letter and RPC queues do not; a
queue over its length drops its oldest message; an expired one is gone; bad
values and drivers that cannot apply them are refused with a clear error."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog.testing
from _rpc_support import own_vhost

import dovecote
from dovecote import Target
from dovecote.testing import running, wait_for

pytestmark = pytest.mark.broker

BOUNDS = {"notification_queue_ttl": 0.5, "notification_queue_max_length": 3}
SCHEMES = ["rabbit", "amqp1"]


@pytest.fixture
def vhost(rabbitmq: str) -> Iterator[str]:
    with own_vhost("bounds") as name:
        yield name


def url_of(scheme: str, vhost: str) -> str:
    return f"{scheme}://guest:guest@127.0.0.1:5672/{vhost}"


def queues(vhost: str) -> dict[str, dict[str, Any]]:
    """``rabbitmqctl list_queues``: name -> its arguments and message count."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "arguments", "messages",
         "--formatter", "json", "-q"], capture_output=True, text=True, check=True, timeout=60)
    return {q["name"]: {"arguments": {name: value for name, _, value in q["arguments"]},
                        "messages": q["messages"]}
            for q in json.loads(listed.stdout or "[]")}


class Recorder:
    """A notification endpoint keeping each ``info`` payload."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.payloads.append(payload)


class Failing(Recorder):
    """``error`` notifications fail: each is parked as a dead letter."""

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        raise RuntimeError("parked as a dead letter")


def notifier(transport: dovecote.Transport, topic: str) -> dovecote.Notifier:
    return dovecote.Notifier(transport, publisher_id="bounds", driver="messagingv2",
                             topics=[topic])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_notification_queues_are_declared_bounded_and_no_other(scheme: str, vhost: str) -> None:
    topic, pool = f"bounds_{uuid.uuid4().hex[:8]}", f"pool_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(url_of(scheme, vhost), **BOUNDS)
    try:
        notifier(transport, topic).info({}, "e", {"n": 0})  # declares <topic>.info
        pooled = dovecote.get_notification_listener(
            transport, [Target(topic=topic)], [Recorder()], pool=pool)
        failing = dovecote.get_notification_listener(transport, [Target(topic=topic)],
                                                     [Failing()])
        rpc = dovecote.get_rpc_server(transport, Target(topic=topic, server="s1"), [object()])
        with running(pooled), running(failing), running(rpc):
            with wait_for(failing, "error"):
                notifier(transport, topic).error({}, "e", {"n": 1})  # -> <topic>.error.dead
            found = queues(vhost)
    finally:
        transport.cleanup()
    bounded = {"x-message-ttl": 500, "x-max-length": 3}
    assert found[f"{topic}.info"]["arguments"] == bounded
    assert found[f"{topic}.error"]["arguments"] == bounded  # declared by its listener
    assert found[pool]["arguments"] == bounded
    assert not found[f"{topic}.error.dead"]["arguments"]  # dead letters are kept
    assert found[f"{topic}.error.dead"]["messages"] == 1
    for rpc_queue in (topic, f"{topic}.s1"):
        assert "x-message-ttl" not in found[rpc_queue]["arguments"]
        assert "x-max-length" not in found[rpc_queue]["arguments"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unbounded_by_default(scheme: str, vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(url_of(scheme, vhost))
    try:
        for n in range(5):
            notifier(transport, topic).info({}, "e", {"n": n})
    finally:
        transport.cleanup()
    assert queues(vhost)[f"{topic}.info"] == {"arguments": {}, "messages": 5}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_queue_over_its_length_drops_its_oldest(scheme: str, vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(url_of(scheme, vhost), notification_queue_max_length=3)
    try:
        for n in range(5):
            notifier(transport, topic).info({}, "e", {"n": n})
        assert queues(vhost)[f"{topic}.info"]["messages"] == 3
        recorder = Recorder()
        listener = dovecote.get_notification_listener(transport, [Target(topic=topic)],
                                                      [recorder])
        with running(listener):
            wait_for(listener, count=3)
        # the three newest; workers may finish them in any order
        assert sorted(p["n"] for p in recorder.payloads) == [2, 3, 4]
    finally:
        transport.cleanup()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_what_waits_longer_than_the_ttl_is_gone(scheme: str, vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(url_of(scheme, vhost), notification_queue_ttl=0.2)
    try:
        notifier(transport, topic).info({}, "e", {"n": 0})
        sent = time.monotonic()
        # The broker expires it on its own clock: read the queue until it is empty.
        left = transport.driver.queue_info(f"{topic}.info")
        while left != (True, 0) and time.monotonic() - sent < 5:
            threading.Event().wait(0.05)
            left = transport.driver.queue_info(f"{topic}.info")
        assert left == (True, 0)
        assert time.monotonic() - sent >= 0.15  # not before its TTL
    finally:
        transport.cleanup()


# -- validation (no broker is contacted) ---------------------------------------------------
BAD = [
    ({"notification_queue_ttl": -1}, "option notification_queue_ttl=-1 must not be negative"),
    ({"notification_queue_ttl": "soon"}, "option notification_queue_ttl='soon' is not a number"),
    ({"notification_queue_ttl": 0.0001}, "below the broker's 1 ms resolution"),
    ({"notification_queue_max_length": "2.5"},
     "option notification_queue_max_length='2.5' is not an integer"),
    ({"notification_queue_max_length": -3},
     "option notification_queue_max_length=-3 must not be negative"),
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(("options", "said"), BAD)
def test_bad_values_are_refused(scheme: str, options: dict[str, Any], said: str) -> None:
    with pytest.raises(dovecote.InvalidTransportURL) as refused:
        dovecote.get_transport(f"{scheme}://guest:s3cret@127.0.0.1:1/", **options)
    assert said in str(refused.value)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_url_query_values_are_read(scheme: str, vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    url = (f"{url_of(scheme, vhost)}?notification_queue_ttl=1.5"
           "&notification_queue_max_length=7")
    transport = dovecote.get_transport(url)
    try:
        notifier(transport, topic).info({}, "e", {"n": 0})
    finally:
        transport.cleanup()
    assert queues(vhost)[f"{topic}.info"]["arguments"] == {
        "x-message-ttl": 1500, "x-max-length": 7}


def test_a_broker_without_queue_arguments_refuses_them() -> None:
    with pytest.raises(dovecote.InvalidTransportURL) as refused:
        dovecote.get_transport("kombu+redis://127.0.0.1:1/0", notification_queue_max_length=5)
    assert ("option notification_queue_max_length: a RabbitMQ queue argument, which "
            "kombu+redis:// has no equivalent for; leave it unset") in str(refused.value)


def test_amqp1_plain_addressing_refuses_them() -> None:
    with pytest.raises(dovecote.InvalidTransportURL) as refused:
        dovecote.get_transport("amqp1://127.0.0.1:1/?addressing=plain&notification_queue_ttl=60")
    assert ("need addressing=rabbitmq (which declares the queues); addressing=plain declares "
            "nothing") in str(refused.value)


# -- a queue declared before, unbounded (by oslo.messaging, say) ------------------------
def test_rabbit_refuses_to_redeclare_it_and_says_which_options(vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    plain = dovecote.get_transport(url_of("rabbit", vhost))
    bounded = dovecote.get_transport(url_of("rabbit", vhost), notification_queue_ttl=60)
    try:
        notifier(plain, topic).info({}, "e", {"n": 0})
        with pytest.raises(dovecote.MessageDeliveryFailure) as refused:
            dovecote.Notifier(bounded, publisher_id="bounds", driver="messagingv2",
                              topics=[topic], retry=0).info({}, "e", {"n": 1})
    finally:
        bounded.cleanup()
        plain.cleanup()
    said = str(refused.value)
    assert "PRECONDITION_FAILED" in said
    assert "notification_queue_ttl / notification_queue_max_length match the services" in said
    assert queues(vhost)[f"{topic}.info"] == {"arguments": {}, "messages": 1}


def test_amqp1_uses_it_as_it_is_and_warns(vhost: str) -> None:
    topic = f"bounds_{uuid.uuid4().hex[:8]}"
    plain = dovecote.get_transport(url_of("amqp1", vhost))
    bounded = dovecote.get_transport(url_of("amqp1", vhost), notification_queue_max_length=1)
    try:
        notifier(plain, topic).info({}, "e", {"n": 0})
        with structlog.testing.capture_logs() as logs:
            notifier(bounded, topic).info({}, "e", {"n": 1})
    finally:
        bounded.cleanup()
        plain.cleanup()
    [warned] = [e for e in logs if e["event"] == "queue.bounds_not_applied"]
    assert warned["queue"] == f"{topic}.info"
    assert warned["log_level"] == "warning"
    assert queues(vhost)[f"{topic}.info"] == {"arguments": {}, "messages": 2}
