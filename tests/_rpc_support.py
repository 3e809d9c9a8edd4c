"""Helpers shared by the RPC behaviour tests: running servers, raw access to
each transport's broker (injecting bodies, reading queue depths, the driver's
reply queue). Everything here talks to the real broker; nothing is mocked."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from _redis_support import RedisInjector, is_redis
from _redis_support import delete_queues as delete_redis_queues

import dovecote
import dovecote.testing
from dovecote import _wire
from dovecote.drivers.base import PendingReply
from dovecote.drivers.memory import get_broker

BROKER_HOST = "127.0.0.1:5672"
#: How long a test waits for anything that should happen at once.
PATIENCE = 5.0


@contextlib.contextmanager
def serve(
    transport: dovecote.Transport, target: dovecote.Target, endpoints: list[Any], **kwargs: Any
) -> Iterator[Any]:
    """A started ``"threading"`` server, stopped and waited for afterwards."""
    with running(dovecote.get_rpc_server(transport, target, endpoints, **kwargs)) as server:
        yield server


def running(server: Any) -> Any:
    """Start ``server`` (a ``"blocking"`` one in a thread of its own) once its
    listeners are up; stop and wait for it afterwards, failing the test if it
    does not stop: the plugin's own helper, which these tests use too."""
    return dovecote.testing.running(server, timeout=PATIENCE)


class Gate:
    """An endpoint whose ``hold`` waits until the test calls :meth:`open`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = Recorder()

    def open(self) -> None:
        self.release.set()

    def hold(self, ctxt: dict[str, Any], tag: Any = None) -> Any:
        self.entered.add(tag)
        assert self.release.wait(PATIENCE), "the gate was never opened"
        return "released" if tag is None else tag


def kind_of(transport: dovecote.Transport) -> str:
    """``memory``, ``rabbit``, ``amqp1`` or ``redis`` (``kombu+redis://``)."""
    if is_redis(transport):
        return "redis"
    return {"kombu": "rabbit", "amqps": "amqp1"}.get(transport.url.transport,
                                                     transport.url.transport)


def memory_name(transport: dovecote.Transport) -> str:
    """The broker name of a ``memory://NAME`` transport."""
    return transport.url.hosts[0].hostname or "" if transport.url.hosts else ""


def reply_queue_of(transport: dovecote.Transport) -> str:
    """The reply queue a transport's driver consumes (created if needed)."""
    driver: Any = transport.driver
    kind = kind_of(transport)
    if kind == "memory":
        return str(driver._reply_q)
    if kind in {"rabbit", "redis"}:
        return str(driver._reply_queue(None))
    driver._ensure_replies()
    return str(driver.reply_q)


def envelope(message: object) -> str:
    """oslo.messaging's 2.0 envelope around ``message``."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


class _Closing:
    """A ``with`` block closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Injector(_Closing):
    """Puts raw bodies (and headers) straight into queues on a transport's
    broker, bypassing dovecote: the memory broker's ``put``, a raw kombu
    producer, a raw Proton sender (which can also send AMQP 1.0 values that
    are not text: maps, lists, described types). One connection for its life."""

    def __init__(self, transport: dovecote.Transport) -> None:
        self.kind = kind_of(transport)
        self.transport = transport
        self._conn: Any = None
        self._senders: dict[str, Any] = {}
        if self.kind == "redis":
            self._conn = RedisInjector()
        elif self.kind == "rabbit":
            import kombu

            self._conn = kombu.Connection(f"amqp://guest:guest@{BROKER_HOST}//")
            self._producer = kombu.Producer(self._conn.default_channel)
        elif self.kind == "amqp1":
            from proton.utils import BlockingConnection

            self._conn = BlockingConnection(
                f"amqp://{BROKER_HOST}", timeout=5, user="guest", password="guest",
                allowed_mechs="PLAIN", allow_insecure_mechs=True, virtual_host="vhost:/",
            )

    def put(self, queue: str, body: Any, headers: dict[str, Any] | None = None) -> None:
        """Append ``body`` to ``queue``."""
        if self.kind == "memory":
            get_broker(memory_name(self.transport)).put(queue, body, headers)
        elif self.kind == "redis":
            self._conn.put(queue, body, headers)
        elif self.kind == "rabbit":
            self._producer.publish(
                body, exchange="", routing_key=queue, content_type="application/json",
                content_encoding="binary" if isinstance(body, bytes) else "utf-8",
                headers=headers or {},
            )
        else:
            from proton import Message

            sender = self._senders.get(queue)
            if sender is None:
                sender = self._senders[queue] = self._conn.create_sender(f"/amq/queue/{queue}")
            sender.send(Message(body=body, inferred=isinstance(body, bytes),
                                properties=headers or None))

    def put_reply(self, reply_q: str, body: Any) -> None:
        """Send ``body`` to a driver's reply queue (on memory: to its handler)."""
        if self.kind == "memory":
            get_broker(memory_name(self.transport)).publish("", reply_q, body)
        else:
            self.put(reply_q, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def inject(transport: dovecote.Transport, queue: str, body: Any,
           headers: dict[str, Any] | None = None) -> None:
    """Put ``body`` straight into ``queue`` on the transport's broker, bypassing dovecote."""
    with Injector(transport) as injector:
        injector.put(queue, body, headers)


class QueueProbe(_Closing):
    """Reads queue depths at the broker: the memory broker's count, or a
    passive declare on RabbitMQ over one connection kept for the probe's life."""

    def __init__(self, transport: dovecote.Transport, *, vhost: str = "/") -> None:
        self.transport = transport
        self._conn: Any = None
        if kind_of(transport) == "redis":
            self._redis = RedisInjector()
        elif kind_of(transport) != "memory":
            import amqp

            self._conn = amqp.Connection(host=BROKER_HOST, userid="guest", password="guest",
                                         virtual_host=vhost)
            self._conn.connect()
            self._channel = self._conn.channel()

    def depth(self, queue: str) -> int:
        """Messages ready in ``queue``."""
        if hasattr(self, "_redis"):
            return self._redis.depth(queue)
        if self._conn is None:
            return get_broker(memory_name(self.transport)).queue_depth(queue)
        _, count, _ = self._channel.queue_declare(queue, passive=True)
        return int(count)

    def close(self) -> None:
        if hasattr(self, "_redis"):
            self._redis.close()
        if self._conn is not None:
            self._conn.close()


def queue_depth(transport: dovecote.Transport, queue: str) -> int:
    """Messages ready in ``queue`` at the broker (a passive declare on RabbitMQ)."""
    with QueueProbe(transport) as probe:
        return probe.depth(queue)


def delete_queues(transport: dovecote.Transport | str, *names: str, vhost: str = "/") -> None:
    """Remove queues a test left on RabbitMQ (no-op on memory); ``transport``
    may be a transport or its URL."""
    url = transport if isinstance(transport, str) else str(transport.url)
    if url.startswith("memory"):
        return
    if is_redis(url):
        delete_redis_queues(*names)
        return
    import amqp

    conn = amqp.Connection(host=BROKER_HOST, userid="guest", password="guest",
                           virtual_host=vhost)
    conn.connect()
    try:
        for name in names:
            channel = conn.channel()
            channel.queue_delete(name)
            channel.close()
    finally:
        conn.close()


def raw_call(
    transport: dovecote.Transport, queue: str, message: dict[str, Any] | None,
    body: str | bytes | None = None, timeout: float = PATIENCE,
) -> dict[str, Any]:
    """Inject a request that names the transport's own reply queue and wait for
    the reply that comes back there. ``message`` gets ``_msg_id`` and
    ``_reply_q`` added and is enveloped; ``body``, if given, is sent as is
    (after ``{msg_id}`` and ``{reply_q}`` are substituted)."""
    msg_id = _wire.new_id()
    reply_q = reply_queue_of(transport)
    pending = PendingReply(msg_id, timeout=timeout)
    transport.driver.expect_reply(pending)
    try:
        if body is None:
            assert message is not None
            body = envelope({**message, "_msg_id": msg_id, "_reply_q": reply_q,
                             "_unique_id": _wire.new_id()})
        elif isinstance(body, str):
            body = body.replace("{msg_id}", msg_id).replace("{reply_q}", reply_q)
        inject(transport, queue, body)
        reply = pending.wait()
    finally:
        transport.driver.forget(pending)
    assert reply is not None
    return dict(reply)


def wait_until(predicate: Callable[[], bool], timeout: float = PATIENCE,
               interval: float = 0.01) -> bool:
    """Poll ``predicate`` (for state no event announces, such as a queue depth)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


class Recorder:
    """Thread-safe list of what endpoints saw, with an event per expected count."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._cond = threading.Condition()

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = PATIENCE) -> list[Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), (
                f"expected {count} items, got {len(self.items)}: {self.items!r}")
            return list(self.items)


def queues_in(vhost: str) -> dict[str, int]:
    """``rabbitmqctl list_queues`` of ``vhost``: name -> messages."""
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages", "--formatter", "json",
         "-q"], capture_output=True, text=True, check=True, timeout=60)
    return {q["name"]: q["messages"] for q in json.loads(listed.stdout or "[]")}


@contextlib.contextmanager
def own_vhost(prefix: str) -> Iterator[str]:
    """A RabbitMQ vhost of the caller's own (``<prefix>_<pid>_<random>``, guest
    may use it), deleted with everything in it afterwards."""
    vhost = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    def rabbitmqctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)
