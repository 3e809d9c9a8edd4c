"""``wait_for``: wait until a server (or an endpoint) has handled what a test sent.

Two forms, told apart by how the call is written:

* ``with wait_for(server, "add") as waited: ...``: a :class:`Waiter` entered
  before the action, like nameko's ``entrypoint_waiter``: its probe (see
  :mod:`dovecote.observe._probes`) is registered on entry, so a request handled
  before the block even ends is never missed; the wait happens on exit, and
  ``waited`` holds what the methods returned or raised;
* ``wait_for(server, "add")`` as a plain call blocks there and then, counting
  in the server's event history (``server.events()``) what it handled since it
  started, or since ``since=mark(server)``; it fails with ``AssertionError``
  when the count is not met in time.

Python cannot tell which form a call's result will be used in, so
:func:`wait_for` reads it from its caller's code: the instruction after the
call enters a ``with`` block or it does not. Either way a misuse fails loudly:
a plain-call waiter (or one made through a helper function) refuses to be
entered afterwards, and one that never waits cannot pass silently.
"""

from __future__ import annotations

import dataclasses
import dis
import functools
import sys
import threading
import time
from types import CodeType, FrameType, TracebackType
from typing import Any

from .._endpoints import actor_ref_of
from ..observe import _probes
from ._history import (
    Mark,
    ended_in_history,
    history_note,
    history_server,
    mark,
    watched_name,
)

__all__ = ["Handled", "Mark", "Waiter", "mark", "wait_for"]

#: What a failure message lists at most of the dispatches that did not match.
_OTHERS_SHOWN = 5
#: The outcomes of a request or notification that went well.
_GOOD = frozenset({"ok", "handled", "filtered"})
#: What a waiter's probe answers when a dispatch starts: it began while the waiter listened.
_SEEN_START = object()
#: How often a plain call reads the server's event history while it waits.
_HISTORY_POLL = 0.02
#: The instructions that enter a ``with`` block (3.11 to 3.13; 3.14 loads
#: ``__exit__`` with LOAD_SPECIAL after a COPY), and those passed over on the way.
_ENTERS_WITH = frozenset({"BEFORE_WITH", "SETUP_WITH", "BEFORE_ASYNC_WITH",
                          "SETUP_ASYNC_WITH", "LOAD_SPECIAL"})
_PASSED_OVER = frozenset({"CACHE", "NOP", "EXTENDED_ARG", "COPY"})


@dataclasses.dataclass(frozen=True, slots=True)
class Handled:
    """One request (``kind="rpc"``) or notification (``"notification"``; a batch
    of ``count``) a server handled: ``name`` (the method, or the priority in
    lower case such as ``"info"``; ``"<unknown>"`` for a request naming no
    method of the server), ``outcome`` (``"ok"``, ``"expected_error"``,
    ``"error"``, ``"rejected"`` ... for requests; ``"handled"``,
    ``"filtered"``, ``"requeued"``, ``"dead_lettered"`` ... for
    notifications), what the method returned (``result``) or raised
    (``error``; for a rejected request what the caller gets, e.g.
    ``NoSuchMethod``), the time it took, the server and the endpoints that ran."""

    kind: str
    name: str
    outcome: str
    result: Any
    error: BaseException | None
    count: int
    seconds: float
    server: Any
    endpoints: tuple[Any, ...]

    @property
    def ok(self) -> bool:
        """Whether it went well (``ok``, ``handled`` or ``filtered``)."""
        return self.outcome in _GOOD


def _lower_priority(name: str) -> str:
    lowered = name.lower()
    return "warn" if lowered == "warning" else lowered


class Waiter(_probes.Probe):
    """Counts what matches while it is registered; see :func:`wait_for`."""

    def __init__(self, watched: Any, method: str | None, *, count: int, timeout: float) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.watched = watched
        self.method = method
        self.count = count
        self.timeout = timeout
        #: What matched, in the order it finished (at most ``count`` entries).
        self.records: list[Handled] = []
        self._seen = 0  # messages matched (a batch counts its messages)
        self._others: list[str] = []
        self._other_count = 0
        self._ref = actor_ref_of(watched)
        self._cond = threading.Condition()
        self._entered = 0.0
        #: Set once a plain call counted in the event history (it cannot be entered).
        self._plain: str | None = None

    # -- what a test reads ------------------------------------------------------------
    @property
    def results(self) -> list[Any]:
        """What each matching request or notification endpoint returned, in order."""
        self._needs_probe("results")
        return [record.result for record in self.records]

    @property
    def errors(self) -> list[BaseException]:
        """What the matching ones raised (only those that raised), in order."""
        self._needs_probe("errors")
        return [record.error for record in self.records if record.error is not None]

    def get(self) -> Any:
        """What the first matching one returned, or raise what it raised (as
        nameko's ``entrypoint_waiter`` result does); after the block."""
        self._needs_probe("get()")
        if not self.records:
            raise AssertionError(self._failure())
        first = self.records[0]
        if first.error is not None:
            raise first.error
        return first.result

    # -- the probe ---------------------------------------------------------------------
    def _matches(self, dispatched: _probes.Dispatched) -> bool:
        if self.method is not None and dispatched.name != self.method and not (
                dispatched.kind == "notification"
                and dispatched.name == _lower_priority(self.method)):
            return False
        if dispatched.server is self.watched:
            return True
        for endpoint in dispatched.endpoints:
            if endpoint is self.watched:
                return True
            if self._ref is not None:
                ref = actor_ref_of(endpoint)
                if ref is not None and ref.actor_urn == self._ref.actor_urn:
                    return True
        return False

    def dispatch_started(self, server: Any, kind: str, name: str, carriers: Any) -> Any:
        return _SEEN_START

    def dispatch_finished(self, token: Any, dispatched: _probes.Dispatched) -> None:
        # A server reports a dispatch after it replied: one that began before the
        # block was entered (the call the test made just before) may end after.
        if (token is not _SEEN_START
                and time.monotonic() - dispatched.seconds < self._entered):
            return
        matched = self._matches(dispatched)
        with self._cond:
            if not matched:
                self._other_count += 1
                if len(self._others) < _OTHERS_SHOWN:
                    self._others.append(_describe(dispatched))
                return
            if self._seen >= self.count:
                return
            self._seen += dispatched.count
            self.records.append(Handled(
                dispatched.kind, dispatched.name, dispatched.outcome, dispatched.result,
                dispatched.error, dispatched.count, dispatched.seconds, dispatched.server,
                dispatched.endpoints))
            if self._seen >= self.count:
                self._cond.notify_all()

    def _needs_probe(self, what: str) -> None:
        if self._plain is not None:
            raise TypeError(
                f"{what} of a plain wait_for() call: it counted the server's event history, "
                "which keeps outcomes, not what methods returned or raised; write "
                f"`with wait_for({watched_name(self.watched)}, ...) as waited:` around the send")

    # -- the context manager -------------------------------------------------------------
    def __enter__(self) -> Waiter:
        if self._plain is not None:
            raise TypeError(
                "this wait_for() was not called in a with statement, so it already waited "
                f"({self._plain}); write `with wait_for(...) as waited:` directly (not through "
                "a variable, a helper or ExitStack), or call it without `with` after the send")
        self._entered = time.monotonic()
        _probes.add_probe(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        try:
            if exc_type is None:
                self.wait()
        finally:
            _probes.remove_probe(self)

    def wait(self) -> None:
        """Wait (at most ``timeout`` seconds) until ``count`` matched; else raise
        ``AssertionError`` saying how many of how many were seen."""
        __tracebackhide__ = True
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while self._seen < self.count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._failure())
                self._cond.wait(remaining)

    # -- the plain call --------------------------------------------------------------
    def wait_in_history(self, since: Mark | None) -> None:
        """Block until the server's event history shows ``count`` matching
        dispatches ended after ``since`` (else since it started); else raise
        ``AssertionError``. Polls the history, at most ``timeout`` seconds."""
        __tracebackhide__ = True
        server = history_server(self.watched, self.method, since)
        self._plain = "since the mark" if since is not None else "since the server started"
        deadline = time.monotonic() + self.timeout
        pause = threading.Event()
        while True:
            events = server.events(since=None if since is None else since.time)
            self.records = [Handled(*ended, server, ()) for ended in ended_in_history(
                server, events, self.method, self.count)]
            self._seen = sum(record.count for record in self.records)
            if self._seen >= self.count:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(self._failure() + history_note(server, events))
            pause.wait(min(_HISTORY_POLL, remaining))

    def _failure(self) -> str:
        what = f"{self.method!r}" if self.method is not None else "requests or notifications"
        text = (f"wait_for({watched_name(self.watched)}, {what}): {self._seen} of {self.count} "
                f"handled within {self.timeout:g}s")
        if self._plain is not None:
            text += f" (counted in its event history {self._plain})"
        if self._other_count:
            shown = "; ".join(self._others)
            more = self._other_count - len(self._others)
            text += (f" (other dispatches meanwhile: {shown}"
                     f"{f'; and {more} more' if more > 0 else ''})")
        return text


def _describe(dispatched: _probes.Dispatched) -> str:
    server = dispatched.server
    where = f" on server {server.name!r}" if server is not None else ""
    return f"{dispatched.kind} {dispatched.name!r} -> {dispatched.outcome}{where}"


def wait_for(server_or_endpoint: Any, method: str | None = None, count: int = 1,
             timeout: float = 5.0, *, since: Mark | None = None) -> Waiter:
    """Wait until ``server_or_endpoint`` has handled ``count`` requests or
    notifications (those to ``method`` only, if given: an RPC method name, or
    a notification priority such as ``"info"``, any case).

    In a ``with`` statement, what was handled since the block was entered,
    waited for when the block ends (a block that raises is not waited for)::

        with wait_for(server, "add") as waited:
            client.cast({}, "add", a=1, b=2)
        assert waited.results == [3]

    ``server_or_endpoint`` is then a server (every request or notification it
    handled, rejected ones too) or an endpoint object as given to the server
    (a pykka ``ActorRef`` or its proxy, either one, for an endpoint actor):
    the dispatches that ran it, on any server, and in :func:`call_endpoint`.
    After the block: ``waited.records`` (:class:`Handled`, in the order they
    finished, the first ``count`` of them), ``waited.results`` and
    ``waited.errors``; ``waited.get()`` returns the first result or raises
    the first one's error.

    As a plain call (no ``with``), it blocks until the server's event history
    (``server.events()``) shows ``count`` of them ended since the server
    started, or since ``since`` (a :func:`mark` taken before the send)::

        client.cast({}, "add", a=1, b=2)
        wait_for(server, "add")                  # one "add" handled, ever
        wait_for(server, "add", since=before)    # one since before = mark(server)

    It takes a server (not an endpoint); it counts requests by the method
    name they gave, and notifications of any priority (or of ``method`` when
    that is the listener's only priority); ``waited.records`` holds their
    outcomes (not results: those need the ``with`` form).

    If fewer were handled within ``timeout`` seconds, ``AssertionError`` says
    how many of how many, and which other dispatches were seen. A waiter
    that a plain call returned refuses to be entered afterwards (a ``with``
    through a variable, a helper function or ``ExitStack`` is a plain call):
    a misuse never passes silently.
    """
    __tracebackhide__ = True
    waiter = Waiter(server_or_endpoint, method, count=count, timeout=timeout)
    if _enters_with(sys._getframe(1)):  # the caller's code tells the form
        if since is not None:
            raise TypeError("since= is for a plain wait_for() call: in a with statement it "
                            "counts from the moment the block is entered")
        return waiter
    waiter.wait_in_history(since)
    return waiter


def _enters_with(frame: FrameType | None) -> bool:
    """Whether the call ``frame`` is making is the context expression of a
    ``with`` statement (the next instruction enters the block)."""
    if frame is None:
        return False
    for offset, opname in _instructions(frame.f_code):
        if offset <= frame.f_lasti or opname in _PASSED_OVER:
            continue
        return opname in _ENTERS_WITH
    return False


@functools.lru_cache(maxsize=256)
def _instructions(code: CodeType) -> tuple[tuple[int, str], ...]:
    return tuple((instruction.offset, instruction.opname)
                 for instruction in dis.get_instructions(code))


