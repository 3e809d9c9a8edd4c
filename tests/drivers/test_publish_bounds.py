"""A sender's own ``retry`` and timeouts bound how long it waits, the lock
included (issue 20, item 4): with the broker unreachable, a thread retrying
for ever on the shared publishing connection never holds up a ``retry=0``
cast, a server's reply or a requeue of another thread. Those fail after about
one connection attempt, with a clear error.

The broker here is a silent one: a socket that accepts connections and never
answers, so each connection attempt lasts its whole ``connect_timeout`` (a
refused port would make every attempt instant and hide the waits).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

import dovecote
from dovecote import Target

pytestmark = pytest.mark.timeout(60)

#: Each connection attempt to the silent broker lasts this long.
CONNECT_TIMEOUT = 1.0
#: What a ``retry=0`` send may take at most: one attempt (its own, or the one
#: in progress it waited for), with room for a loaded machine.
BOUND = 3 * CONNECT_TIMEOUT


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(5)
        for conn in held:
            conn.close()


def timed(work: Callable[[], Any], limit: float) -> tuple[float, BaseException | None]:
    """Run ``work`` in a thread; how long it took and what it raised. A run
    longer than ``limit`` is reported as ``limit`` (the thread is left to end
    when the transport is cleaned up)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return time.monotonic() - started, outcome[0] if outcome else TimeoutError("still waiting")


def retrying_for_ever(transport: dovecote.Transport, topic: str, threads: int = 1,
                      ) -> tuple[list[threading.Thread], list[BaseException]]:
    """``threads`` threads casting with ``retry=-1`` (they end at cleanup)."""
    client = dovecote.get_rpc_client(transport, Target(topic=topic), retry=-1)
    ended: list[BaseException] = []

    def cast() -> None:
        try:
            client.cast({}, "tick")
        except BaseException as exc:
            ended.append(exc)

    workers = [threading.Thread(target=cast, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers, ended


def wait_for_event(logs: list[dict[str, Any]], event: str, timeout: float = 10) -> None:
    """Until ``event`` was logged (the retrying threads are under way)."""
    deadline = time.monotonic() + timeout
    while not any(line["event"] == event for line in logs):
        assert time.monotonic() < deadline, f"no {event} within {timeout}s"
        threading.Event().wait(0.01)


def test_rabbit_retry_0_does_not_wait_behind_another_threads_retries(
        silent_port: int, topic: str) -> None:
    url = (f"rabbit://guest:guest@127.0.0.1:{silent_port}/?connect_timeout={CONNECT_TIMEOUT}"
           "&rabbit_retry_interval=0.05&rabbit_retry_backoff=0&rabbit_interval_max=0.05"
           "&max_retries=0")
    transport = dovecote.get_transport(url)
    try:
        with structlog.testing.capture_logs() as logs:
            workers, _ = retrying_for_ever(transport, topic)
            wait_for_event(logs, "connection.retrying")
            client = dovecote.get_rpc_client(transport, Target(topic=topic), retry=0)
            cast_took, cast_error = timed(lambda: client.cast({}, "tick"), 15)
            # a server's reply: retries max_retries=0 times, whatever the other thread does
            driver: Any = transport.driver
            reply_took, reply_error = timed(
                lambda: driver.send_reply("reply_gone", "{}", msg_id="m1"), 15)
        print(f"\nrabbit: retry=0 cast failed after {cast_took:.2f}s, "
              f"a server reply gave up after {reply_took:.2f}s, "
              f"while another thread retried for ever")
        assert isinstance(cast_error, dovecote.MessageDeliveryFailure), cast_error
        assert "(1 attempt)" in str(cast_error)
        assert "broker is running" in str(cast_error)
        assert cast_took < BOUND
        assert reply_error is None  # logged, never raised
        assert reply_took < BOUND
        assert any(line["event"] == "reply.failed" for line in logs)
    finally:
        started = time.monotonic()
        transport.cleanup()
        for worker in workers:
            worker.join(10)
        assert time.monotonic() - started < 5
    assert not any(worker.is_alive() for worker in workers)


def test_amqp1_retry_0_does_not_wait_behind_other_threads_attempts(
        silent_port: int, topic: str) -> None:
    """Three threads retry for ever: a ``retry=0`` cast fails with the attempt
    in progress, instead of queueing for the lock behind theirs and then
    making one of its own."""
    url = (f"amqp1://guest:guest@127.0.0.1:{silent_port}/?connect_timeout={CONNECT_TIMEOUT}"
           "&reconnect_delay=0.01&reconnect_max_delay=0.01")
    transport = dovecote.get_transport(url)
    took: list[float] = []
    try:
        with structlog.testing.capture_logs() as logs:
            workers, _ = retrying_for_ever(transport, topic, threads=3)
            wait_for_event(logs, "sender.reconnecting")
            client = dovecote.get_rpc_client(transport, Target(topic=topic), retry=0)
            for _ in range(3):
                cast_took, cast_error = timed(lambda: client.cast({}, "tick"), 15)
                took.append(cast_took)
                assert isinstance(cast_error, dovecote.MessageDeliveryFailure), cast_error
                assert "after 1 attempt" in str(cast_error)
        print(f"\namqp1: retry=0 casts failed after {', '.join(f'{t:.2f}s' for t in took)} "
              f"(connect_timeout={CONNECT_TIMEOUT}s) while three threads retried for ever")
        # at most the attempt in progress: never its own on top, nor others' before it
        assert max(took) < CONNECT_TIMEOUT + 0.5
    finally:
        transport.cleanup()
        for worker in workers:
            worker.join(10)
    assert not any(worker.is_alive() for worker in workers)
