"""Helpers for testing services built on dovecote (and the pytest plugin's parts).

* :func:`running`: a server started for a ``with`` block, stopped and waited
  for after it (a server that does not stop in time fails the test);
* :func:`wait_for`: wait until a server or an endpoint has handled what the
  test sent: ``with wait_for(server, "add") as waited:`` around the send (and
  see what it returned or raised), or ``wait_for(server, "add")`` as a plain
  call after it, counting in the server's event history since it started or
  since ``since=mark(server)`` (:func:`mark`); a waiter used the wrong way fails
  loudly, it never passes silently;
* :func:`call_endpoint`: call an endpoint method through the real dispatch
  path (policy, namespace, version, serializer, JSON, error rebuilding)
  without a transport;
* :class:`SentNotifications`: what the ``test`` notifier driver kept;
* :func:`unique_topic`: a topic no other test uses; :func:`forget_topic`
  deletes its queues;
* :class:`DeclaredQueues`: the queues a transport declared that were not on
  the broker before, deleted after the test.

The pytest plugin (``dovecote.testing._plugin``, registered as an entry point)
adds the fixtures ``dovecote_url``, ``dovecote_transport``, ``dovecote_topic``
and ``dovecote_notifications``, and the option ``--dovecote-url``. This
module needs no pytest: failures are ``AssertionError``.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from ..notify._listener import PRIORITIES
from ._call import call_endpoint
from ._notifications import SentNotification, SentNotifications
from ._queues import DeclaredQueues
from ._wait import Handled, Mark, Waiter, mark, wait_for

if TYPE_CHECKING:
    from .._transport import Transport
    from ..actors import MessageHandlingServer

__all__ = [
    "DeclaredQueues",
    "Handled",
    "Mark",
    "Running",
    "SentNotification",
    "SentNotifications",
    "Waiter",
    "call_endpoint",
    "forget_topic",
    "mark",
    "running",
    "unique_topic",
    "wait_for",
]


def unique_topic(prefix: str = "test") -> str:
    """``<prefix>_<12 hex digits>``: a topic no other test (or test run) uses,
    so tests sharing a real broker never see each other's messages."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def forget_topic(transport: Transport, topic: str) -> None:
    """Delete the queues a test's ``topic`` leaves on a broker: ``<topic>``
    (RPC), and ``<topic>.<priority>`` and ``<topic>.<priority>.dead`` for each
    priority (notifications, dead letters). Queues named otherwise (a
    target's ``server``, a listener's ``pool``) are not known here. Nothing
    for a transport that cannot delete queues."""
    for name in [topic, *(f"{topic}.{p}{dead}" for p in PRIORITIES for dead in ("", ".dead"))]:
        transport.driver.delete_queue(name)


def running(server: MessageHandlingServer, *, timeout: float = 5.0) -> Running:
    """Start ``server`` for a ``with`` block, which gets the server once its
    listeners are up (its queues exist: what is sent from then on reaches it);
    on leaving the block, stop it and wait for it. A ``"blocking"`` server is
    started in a thread of its own. Each wait is bounded by ``timeout``
    seconds: a server that does not start, or does not stop (an endpoint that
    has not returned), raises ``AssertionError`` saying which actors are still
    alive."""
    return Running(server, timeout=timeout)


class Running:
    """The context manager :func:`running` returns."""

    def __init__(self, server: MessageHandlingServer, *, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self._runner: threading.Thread | None = None
        self._failed: list[BaseException] = []

    def __enter__(self) -> MessageHandlingServer:
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        server, timeout = self.server, self.timeout
        if server.running:
            raise RuntimeError(f"server {server.name!r} is already running")
        if server.executor == "blocking":
            self._runner = threading.Thread(target=self._start, daemon=True,
                                            name=f"dovecote-running-{server.name}")
            self._runner.start()
            _until_ready(server, self._runner, self._failed, timeout)
        else:
            server.start()
            if not server.wait_ready(timeout):
                server.stop()
                raise AssertionError(f"server {server.name!r} did not start within {timeout:g}s")
        return server

    def _start(self) -> None:
        """``start()`` of a blocking server, in its own thread."""
        try:
            self.server.start()
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread
            self._failed.append(exc)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        __tracebackhide__ = True
        server, timeout = self.server, self.timeout
        server.stop()
        deadline = time.monotonic() + timeout
        stopped = server.wait(timeout)
        if stopped and self._runner is not None:
            self._runner.join(max(0.0, deadline - time.monotonic()))
            stopped = not self._runner.is_alive()
        if not stopped:
            raise AssertionError(
                f"server {server.name!r} did not stop within {timeout:g}s of stop(): "
                f"{_still_running(server)} (an endpoint that has not returned keeps its "
                "server from stopping)")
        if self._failed and exc_type is None:
            raise self._failed[0]


#: How often :func:`running` checks that a blocking server's thread has not
#: ended (start() failed) while it waits for the server to be ready.
_START_CHECK = 0.05


def _until_ready(server: MessageHandlingServer, runner: threading.Thread,
                 failed: list[BaseException], timeout: float) -> None:
    """Wait until a blocking server started in ``runner`` is ready; raise what
    ``start()`` raised if it ended first."""
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while not server.wait_ready(min(_START_CHECK, max(0.0, deadline - time.monotonic()))):
        if not runner.is_alive():
            if failed:
                raise failed[0]
            raise AssertionError(f"server {server.name!r}: start() returned before it was ready")
        if time.monotonic() >= deadline:
            server.stop()
            raise AssertionError(f"server {server.name!r} did not start within {timeout:g}s")


def _still_running(server: MessageHandlingServer) -> str:
    """Which of the server's actors are alive, and what their mailboxes hold."""
    kinds: collections.Counter[str] = collections.Counter()
    waiting = 0
    for record in server.actors():
        if record.get("alive") and record.get("kind") != "endpoint":
            kinds[str(record.get("kind"))] += 1
            waiting += int(record.get("mailbox") or 0)
    if not kinds:
        return "its actors have ended, but its blocking executor's thread has not"
    alive = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items()))
    return f"still alive: {alive}; {waiting} message(s) waiting in their mailboxes"
