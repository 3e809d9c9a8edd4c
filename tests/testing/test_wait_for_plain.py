"""``dovecote.testing.wait_for`` as a plain call (issue 20, item 10): it used to
return a context manager at once, so ``wait_for(server, "add")`` without
``with`` waited for nothing and a test written that way always passed. Now a
plain call blocks until the server's event history shows the count met (since
the server started, or since ``since=mark(server)``), or fails; the ``with``
form works as before; and every misuse fails loudly."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from _rpc_support import delete_queues

import dovecote
from dovecote import Target
from dovecote.testing import Mark, mark, running, wait_for

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.timeout(60)]


class Api:
    def __init__(self) -> None:
        self.release = threading.Event()

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def slow(self, ctxt: Any) -> str:
        self.release.wait(10)
        return "done"


class Audit:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        return None

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        return None


class OnlyInfo:
    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        return None


@pytest.fixture
def memory() -> Any:
    transport = dovecote.get_transport(f"memory://{dovecote.testing.unique_topic('plain')}")
    yield transport
    transport.cleanup()


def _server(transport: dovecote.Transport, topic: str, **kwargs: Any) -> Any:
    return dovecote.get_rpc_server(transport, Target(topic=topic), [Api()], **kwargs)


def test_a_plain_call_blocks_until_the_request_was_handled(
    transport: dovecote.Transport, topic: str,
) -> None:
    """On every transport: the plain call returns only once the (slow) request
    has been handled, and its record says how it ended."""
    server = _server(transport, topic)
    api = server.endpoints[0]
    try:
        with running(server):
            client = dovecote.get_rpc_client(transport, Target(topic=topic))
            before = mark(server)
            client.cast({}, "slow")
            releaser = threading.Timer(0.3, api.release.set)
            releaser.start()
            waited = wait_for(server, "slow", since=before)
            assert api.release.is_set(), "wait_for returned before the request was handled"
            assert [(r.kind, r.name, r.outcome, r.ok) for r in waited.records] == [
                ("rpc", "slow", "ok", True)]
            releaser.join()
    finally:
        delete_queues(transport, topic)


def test_a_plain_call_with_nothing_handled_fails(memory: dovecote.Transport) -> None:
    """The misuse that used to pass: nothing was sent, the plain call fails."""
    server = _server(memory, "t")
    with running(server):
        with pytest.raises(AssertionError, match=r"'add'\): 0 of 1 handled within 0.3s "
                                                 r"\(counted in its event history since the "
                                                 r"server started\)"):
            wait_for(server, "add", timeout=0.3)
        dovecote.get_rpc_client(memory, Target(topic="t")).call({}, "add", a=1, b=2)
        with pytest.raises(AssertionError, match="1 of 2 handled"):
            wait_for(server, "add", count=2, timeout=0.3)


def test_since_a_mark_counts_only_what_came_after_it(memory: dovecote.Transport) -> None:
    server = _server(memory, "t")
    with running(server):
        client = dovecote.get_rpc_client(memory, Target(topic="t"))
        assert client.call({}, "add", a=1, b=2) == 3
        wait_for(server, "add")  # since the server started: that one
        after = mark(server)
        assert isinstance(after, Mark)
        with pytest.raises(AssertionError, match="since the mark"):
            wait_for(server, "add", since=after, timeout=0.3)
        for i in range(3):
            client.cast({}, "add", a=i, b=i)
        waited = wait_for(server, "add", count=3, since=after)
        assert [record.outcome for record in waited.records] == ["ok"] * 3
        with pytest.raises(ValueError, match="another server"):
            wait_for(_server(memory, "other"), "add", since=after)


def test_the_with_form_works_as_before(memory: dovecote.Transport) -> None:
    server = _server(memory, "t")
    client = dovecote.get_rpc_client(memory, Target(topic="t"))
    with running(server):
        with wait_for(server, "add") as waited:
            client.cast({}, "add", a=2, b=3)
        assert waited.results == [5]
        with (wait_for(server, "add") as first,
              wait_for(server.endpoints[0], "add") as second):
            client.cast({}, "add", a=1, b=1)
        assert first.get() == second.get() == 2
        with pytest.raises(TypeError, match="since= is for a plain"), \
                wait_for(server, "add", since=mark(server)):
            pass


def test_every_misuse_fails_loudly(memory: dovecote.Transport) -> None:
    server = _server(memory, "t")
    client = dovecote.get_rpc_client(memory, Target(topic="t"))
    with running(server):
        client.call({}, "add", a=1, b=1)
        # a with statement through a variable: the call was a plain one
        waiter = wait_for(server, "add")
        with pytest.raises(TypeError, match="not called in a with statement"), waiter:
            pass
        # through ExitStack (or a helper): the same
        with pytest.raises(TypeError, match="not called in a with statement"), \
                contextlib.ExitStack() as stack:
            stack.enter_context(wait_for(server, "add"))
        # a plain call keeps outcomes, not results
        for read in (lambda w: w.results, lambda w: w.errors, lambda w: w.get()):
            with pytest.raises(TypeError, match="plain wait_for"):
                read(waiter)
        # a plain call on an endpoint, or on a server without history
        with pytest.raises(TypeError, match="pass the server"):
            wait_for(server.endpoints[0], "add")
        quiet = _server(memory, "quiet", event_history=0)
        with pytest.raises(TypeError, match="keeps no event history"):
            wait_for(quiet, "add")
        with pytest.raises(TypeError, match="takes a server"):
            mark(server.endpoints[0])


def test_a_plain_call_counts_notifications(memory: dovecote.Transport) -> None:
    notifier = dovecote.Notifier(memory, publisher_id="p", driver="messagingv2",
                                 topics=["audit"])
    listener = dovecote.get_notification_listener(
        memory, [Target(topic="audit")], [Audit()])
    with running(listener):
        notifier.info({}, "a.b", {})
        notifier.error({}, "a.c", {})
        waited = wait_for(listener, count=2)
        assert [record.kind for record in waited.records] == ["notification"] * 2
        with pytest.raises(TypeError, match="cannot tell notification priorities apart"):
            wait_for(listener, "info")
    only_info = dovecote.get_notification_listener(
        memory, [Target(topic="infos")], [OnlyInfo()])
    with running(only_info):
        before = mark(only_info)
        dovecote.Notifier(memory, publisher_id="p", driver="messagingv2",
                          topics=["infos"]).info({}, "x", {})
        assert wait_for(only_info, "INFO", since=before).records[0].outcome == "handled"


USER_TEST = '''
import dovecote
from dovecote.testing import mark, running, wait_for


class Api:
    def add(self, ctxt, a, b):
        return a + b


def test_fail_plain_wait_for_nothing_sent(dovecote_transport, dovecote_topic):
    server = dovecote.get_rpc_server(dovecote_transport, dovecote.Target(topic=dovecote_topic),
                                     [Api()])
    with running(server):
        wait_for(server, "add", timeout=0.3)


def test_plain_wait_for_after_the_send(dovecote_transport, dovecote_topic):
    server = dovecote.get_rpc_server(dovecote_transport, dovecote.Target(topic=dovecote_topic),
                                     [Api()])
    client = dovecote.get_rpc_client(dovecote_transport, dovecote.Target(topic=dovecote_topic))
    with running(server):
        before = mark(server)
        client.cast({}, "add", a=1, b=2)
        wait_for(server, "add", since=before)
'''


def test_a_users_plain_wait_for_fails_when_nothing_was_handled(
    pytester: pytest.Pytester,
) -> None:
    """Through the pytest plugin, as a user's test file: the misuse fails the test."""
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: wait_for(server 'test_*', 'add'): 0 of 1 handled within 0.3s*"])
