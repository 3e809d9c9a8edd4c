"""Declaring for the ``amqp1://`` driver's ``rabbitmq`` address plan:
exchanges, queues and bindings over AMQP 0-9-1, which RabbitMQ 3.x's AMQP 1.0
plugin cannot do itself."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import amqp
import amqp.exceptions

from ._connection import TRANSIENT_ERRORS, Attempts, HostRing, acquire_unless_failed, describe

if TYPE_CHECKING:
    from ._address import Binding, QueueSpec
    from ._security import Security

__all__ = ["Topology", "queue_arguments"]


def queue_arguments(spec: QueueSpec) -> dict[str, int]:
    """The AMQP 0-9-1 arguments of ``spec``'s queue: ``x-expires`` (ms) for a
    queue that vanishes unused, ``x-message-ttl`` (ms) and ``x-max-length`` for
    a bounded notification queue (the broker drops the oldest message first)."""
    arguments: dict[str, int] = {}
    if spec.expires:
        arguments["x-expires"] = int(spec.expires * 1000)
    if spec.message_ttl:
        arguments["x-message-ttl"] = spec.message_ttl
    if spec.max_length:
        arguments["x-max-length"] = spec.max_length
    return arguments


class Topology:
    """Declares exchanges, queues and bindings over AMQP 0-9-1 (RabbitMQ only).

    RabbitMQ 3.x's AMQP 1.0 plugin can attach to existing queues and exchanges
    but cannot bind a named queue, so the ``rabbitmq`` address plan declares
    oslo.messaging's layout here first. A declaration that clashes with an
    existing object of different flags (another client declared it) is
    accepted as long as the object exists.
    """

    def __init__(
        self, ring: HostRing, *, virtual_host: str, timeout: float, security: Security,
        durable: bool = False, log: Any = None,
    ) -> None:
        self._log = log  # the driver's logger (structlog), for a bound that cannot apply
        self._durable = durable  # topic exchanges, as amqp_durable_queues makes them
        self._security = security
        self._ring = ring
        self._vhost = virtual_host
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: amqp.Connection | None = None
        self._known: set[tuple[str, str]] = set()
        self._attempts = Attempts()

    def _channel(self) -> Any:
        if self._conn is None:
            last: BaseException | None = None
            for host in self._ring.rotation():
                conn = self._security.amqp091(
                    host, self._ring.address(host), virtual_host=self._vhost,
                    connect_timeout=self._timeout,
                )
                try:
                    conn.connect()
                except TRANSIENT_ERRORS as exc:
                    last = exc
                    continue
                self._conn = conn
                self._attempts.worked()
                break
            else:
                error = ConnectionError(
                    f"could not declare queues: {describe(last) if last else ''}")
                self._attempts.failed(error)
                raise error
        return self._conn.channel()

    def _tolerant(self, declare: Callable[[Any], object], passive: Callable[[Any], object]) -> bool:
        """Declare; if it exists with other flags, check it exists (and say so: True)."""
        channel = self._channel()
        try:
            declare(channel)
        except amqp.exceptions.PreconditionFailed:
            passive(self._channel())  # exists with other flags: fine
            return True
        channel.close()
        return False

    def _exchange(self, binding: Binding) -> None:
        if ("x", binding.exchange) in self._known or binding.exchange.startswith("amq."):
            return
        self._tolerant(
            lambda ch: ch.exchange_declare(
                binding.exchange, binding.exchange_type,
                durable=self._durable and binding.exchange_type == "topic",
                auto_delete=binding.exchange_type == "fanout",
            ),
            lambda ch: ch.exchange_declare(binding.exchange, binding.exchange_type, passive=True),
        )
        if binding.exchange_type != "fanout":  # auto-delete: gone with its last queue
            self._known.add(("x", binding.exchange))

    def ensure(
        self, *, queues: Iterable[QueueSpec] = (), exchanges: Iterable[Binding] = ()
    ) -> None:
        """Declare what is missing (cached: declaring again costs nothing). A
        connection attempt that failed while this waited for the lock fails it too."""
        seen = self._attempts.seen()
        acquire_unless_failed(self._lock, self._attempts, seen)
        try:
            if self._conn is None:
                self._attempts.check(seen)
            try:
                for binding in exchanges:
                    self._exchange(binding)
                for spec in queues:
                    self._queue(spec)
            except BaseException:
                self._forget_locked()
                raise
        finally:
            self._lock.release()

    def _queue(self, spec: QueueSpec) -> None:
        if ("q", spec.name) in self._known:
            return
        clashed = self._tolerant(
            lambda ch: ch.queue_declare(spec.name, durable=spec.durable, auto_delete=False,
                                        arguments=queue_arguments(spec) or None),
            lambda ch: ch.queue_declare(spec.name, passive=True),
        )
        if clashed and (spec.message_ttl or spec.max_length) and self._log is not None:
            self._log.warning(
                "queue.bounds_not_applied", queue=spec.name,
                reason="the queue exists with other arguments, and is used as it is",
                hint="delete it (it is declared again, bounded), or bound it with a "
                     "RabbitMQ policy (message-ttl, max-length)")
        for binding in spec.bindings:
            self._exchange(binding)
            channel = self._channel()
            channel.queue_bind(spec.name, binding.exchange, binding.routing_key)
            channel.close()
        self._known.add(("q", spec.name))

    def delete_queue(self, name: str) -> None:
        """Delete a queue the driver made for itself (errors ignored: it may be gone)."""
        with self._lock:
            self._known.discard(("q", name))
            try:
                channel = self._channel()
                channel.queue_delete(name)
                channel.close()
            except TRANSIENT_ERRORS:
                self._forget_locked()

    def queue_info(self, name: str) -> tuple[bool, int]:
        """Whether queue ``name`` exists and how many messages it holds: a
        passive declare on the declaring connection, under its lock. A lost
        connection raises (one of ``TRANSIENT_ERRORS``) and is forgotten."""
        with self._lock:
            try:
                channel = self._channel()
                try:
                    _, messages, _ = channel.queue_declare(name, passive=True)
                except amqp.exceptions.NotFound:
                    return False, 0
                finally:
                    with contextlib.suppress(*TRANSIENT_ERRORS):
                        channel.close()
            except TRANSIENT_ERRORS:
                self._forget_locked()
                raise
        return True, messages

    def forget(self) -> None:
        """Forget what was declared (the broker may have lost it) and disconnect."""
        with self._lock:
            self._forget_locked()

    def _forget_locked(self) -> None:
        """:meth:`forget` for a caller already holding the lock."""
        self._known.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # tearing down a dead socket
                conn.collect()
