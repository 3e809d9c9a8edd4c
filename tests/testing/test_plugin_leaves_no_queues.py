"""A user's tests run with ``--dovecote-url`` on RabbitMQ (``rabbit://`` and
``amqp1://``) leave no queue behind: RPC topic and server queues, notification
queues, pools and dead-letter queues their ``dovecote_transport`` declared are
deleted after each test (the session runs in a subprocess, on a vhost of this
test's own, and ``rabbitmqctl list_queues`` is read before and after). A queue
that was there before the tests, with what it holds, is left alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _rpc_support import own_vhost, queues_in

import dovecote

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.broker

#: The user's tests: every kind of queue a test can make through dovecote_transport.
USER_TESTS = '''
import dovecote
import pytest
from dovecote import Target
from dovecote.testing import running, wait_for


class Echo:
    def echo(self, ctxt, value):
        return value


class Audit:
    def __init__(self):
        self.seen = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append(payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        raise RuntimeError("parked as a dead letter")


def notifier(transport, topic):
    return dovecote.Notifier(transport, publisher_id="t", driver="messagingv2", topics=[topic])


def test_rpc_server_with_a_server_name(dovecote_transport, dovecote_topic):
    server = dovecote.get_rpc_server(dovecote_transport, Target(topic=dovecote_topic,
                                     server="host-1"), [Echo()])
    with running(server):
        client = dovecote.get_rpc_client(dovecote_transport, Target(topic=dovecote_topic,
                                         server="host-1"), timeout=10)
        assert client.call({}, "echo", value=1) == 1


def test_fixed_topic_not_from_the_fixture(dovecote_transport):
    server = dovecote.get_rpc_server(dovecote_transport, Target(topic="billing",
                                     server="node-a"), [Echo()])
    with running(server):
        assert dovecote.get_rpc_client(dovecote_transport, Target(topic="billing"),
                                       timeout=10).call({}, "echo", value=2) == 2


def test_pool_and_dead_letters(dovecote_transport, dovecote_topic):
    pooled = dovecote.get_notification_listener(
        dovecote_transport, [Target(topic=dovecote_topic)], [Audit()], pool="metering")
    plain = dovecote.get_notification_listener(
        dovecote_transport, [Target(topic="audit")], [Audit()])
    with running(pooled), running(plain):
        with wait_for(pooled, "error"), wait_for(plain, "error"):
            notifier(dovecote_transport, dovecote_topic).error({}, "e", {"n": 1})
            notifier(dovecote_transport, "audit").error({}, "e", {"n": 2})


def test_notifications_nobody_listens_to(dovecote_transport):
    notifier(dovecote_transport, "unheard").info({}, "e", {"n": 3})


def test_a_queue_that_was_there_before(dovecote_transport):
    notifier(dovecote_transport, "kept").info({}, "e", {"n": 4})
    listener = dovecote.get_notification_listener(
        dovecote_transport, [Target(topic="kept")], [Audit()], pool="kept-pool")
    with running(listener):
        pass


def test_a_server_left_running(dovecote_transport):
    server = dovecote.get_rpc_server(dovecote_transport, Target(topic="forgotten",
                                     server="s"), [Echo()])
    server.start()
    assert server.wait_ready(10)
'''


@pytest.fixture
def vhost(rabbitmq: str) -> Iterator[str]:
    with own_vhost("plugin_queues") as name:
        yield name


@pytest.mark.parametrize("scheme", ["rabbit", "amqp1"])
def test_a_session_on_a_broker_leaves_only_what_was_there(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vhost: str, scheme: str,
) -> None:
    url = f"{scheme}://guest:guest@127.0.0.1:5672/{vhost}"
    before = dovecote.get_transport(url)
    try:  # another service's queue, with a notification waiting in it
        dovecote.Notifier(before, publisher_id="other", driver="messagingv2",
                          topics=["kept"]).info({}, "e", {"n": 0})
    finally:
        before.cleanup()
    assert queues_in(vhost) == {"kept.info": 1}

    monkeypatch.delenv("DOVECOTE_TEST_URL", raising=False)
    pytester.makepyfile(test_user_queues=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--dovecote-url={url}",
                                           timeout=120)
    result.assert_outcomes(passed=6)
    assert "could not delete" not in result.stdout.str()
    assert queues_in(vhost) == {"kept.info": 2}  # the test's notification waits there too
