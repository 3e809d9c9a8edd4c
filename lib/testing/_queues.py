"""The queues a test's transport made on its broker, so they can be deleted after it.

A test on a real broker (``--dovecote-url``) declares queues through servers
and notifiers: ``<topic>`` and ``<topic>.<server>`` for an RPC server,
``<topic>.<priority>`` or a pool for a notification listener (a notifier
declares ``<topic>.<priority>`` too), and ``<key>.dead`` once a notification
is parked. None of them goes away by itself (they are shared, and keep what
is sent while no one listens). :class:`DeclaredQueues` watches a transport's
driver and notes each of those names the first time it is about to be
declared, if the queue does not exist yet (a passive declare asks the
broker): a queue that was there before the test, another service's say, is
never deleted. A listener's own fanout queue (``<topic>_fanout_<id>``) is
noted too, from the listener's list of its queues: its listener deletes it
when it is cleaned up, but a server the test left running is not stopped by
every driver's ``cleanup``. The driver deletes its reply queue itself.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._target import Target
    from .._transport import Transport

__all__ = ["DeclaredQueues"]

#: The driver methods that declare queues, and the names each may declare.
_DECLARING = ("listen", "listen_for_notifications", "listen_dead_letters", "send_notification")


class DeclaredQueues:
    """Notes the queues ``transport`` declares from now on that did not exist
    before; :meth:`delete` deletes them. Used by the pytest plugin's
    ``dovecote_transport``; a test that makes transports of its own can use it
    the same way::

        declared = DeclaredQueues(transport)
        ...  # servers, notifiers, listeners on transport
        declared.delete()  # first: it uses the transport
        transport.cleanup()
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._lock = threading.Lock()
        self._seen: set[str] = set()  # checked once each
        self._made: dict[str, None] = {}  # absent before the test: deleted after it
        driver = transport.driver
        for method in _DECLARING:
            setattr(driver, method, self._watching(getattr(driver, method), method))

    @property
    def names(self) -> list[str]:
        """The queues noted so far, in the order they were first declared."""
        with self._lock:
            return list(self._made)

    def _watching(self, original: Callable[..., Any], method: str) -> Callable[..., Any]:
        names = _NAMES[method]

        @functools.wraps(original)
        def watched(*args: Any, **kwargs: Any) -> Any:
            self._note(names(*args, **kwargs))
            made = original(*args, **kwargs)
            if method == "listen":
                self._note_fanout(args[0] if args else kwargs["target"], made)
            return made

        return watched

    def _note_fanout(self, target: Target, listener: Any) -> None:
        """Note the listener's own ``<topic>_fanout_<id>`` queue, found in the
        queues it lists (``queues`` on ``rabbit://``, ``sources`` on ``amqp1://``;
        a driver that lists none has nothing to note)."""
        prefix = f"{target.topic}_fanout_"
        listed = [*getattr(listener, "queues", ()),
                  *(source.queue for source in getattr(listener, "sources", ()))]
        names = [str(getattr(queue, "name", queue)) for queue in listed if queue is not None]
        with self._lock:
            for name in names:
                if name.startswith(prefix):
                    self._seen.add(name)
                    self._made[name] = None

    def _note(self, names: Iterable[str]) -> None:
        fresh = [name for name in names if name not in self._seen]
        if not fresh:
            return
        with self._lock:
            fresh = [name for name in fresh if name not in self._seen]
            self._seen.update(fresh)
        for name in fresh:
            if not self._existed(name):
                with self._lock:
                    self._made[name] = None

    def _existed(self, name: str) -> bool:
        """Whether queue ``name`` exists now (``False`` when the broker cannot tell)."""
        try:
            found = self.transport.driver.queue_info(name)
        except Exception:  # noqa: BLE001 - cannot tell: the declaration that follows says why
            return False
        return bool(found and found[0])

    def delete(self, transport: Transport | None = None) -> list[str]:
        """Delete every queue noted, through ``transport`` (default: the one
        watched, which must not have been cleaned up). Returns what could not
        be deleted, each with the reason; a queue already gone is no failure."""
        driver = (transport or self.transport).driver
        with self._lock:
            names, self._made = list(self._made), {}
        failed = []
        for name in names:
            try:
                driver.delete_queue(name)
            except Exception as exc:  # noqa: BLE001 - reported, the others still deleted
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        return failed


def _listen(target: Target, *_args: Any, **_kwargs: Any) -> list[str]:
    topic = str(target.topic)
    # <topic>_fanout: the topic's stream, with rabbit_stream_fanout (else no such queue)
    names = [topic, f"{topic}_fanout"]
    if target.server:
        names.append(f"{topic}.{target.server}")
    return names


def _listen_for_notifications(targets_and_priorities: Sequence[tuple[Target, str]],
                              pool: str | None = None, *_args: Any, **_kwargs: Any) -> list[str]:
    names = []
    for target, priority in targets_and_priorities:
        key = f"{target.topic}.{priority}"
        names += [key, f"{key}.dead"]
    if pool:
        names += [pool, f"{pool}.dead"]
    return names


def _listen_dead_letters(queue: str, *_args: Any, **_kwargs: Any) -> list[str]:
    return [queue]


def _send_notification(target: Target, *_args: Any, **_kwargs: Any) -> list[str]:
    return [str(target.topic), f"{target.topic}.dead"]  # target.topic: <topic>.<priority>


_NAMES: dict[str, Callable[..., list[str]]] = {
    "listen": _listen,
    "listen_for_notifications": _listen_for_notifications,
    "listen_dead_letters": _listen_dead_letters,
    "send_notification": _send_notification,
}
