"""``kombu+redis://`` where it differs from RabbitMQ: what dovecote does about
it (a list item that is no kombu message is logged and dropped; a listener is
subscribed to its fanout when ``listen()`` returns), and the limits the transports guide's
"Redis limits" table states (from ``_redis_support.REDIS_LIMITS``), checked as
behaviour so a kombu upgrade that changes them shows here."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog.testing
from _redis_support import REDIS_LIMITS, RedisInjector, delete_queues
from _rpc_support import PATIENCE, serve, wait_until

import dovecote
from dovecote import Target


class Api:
    def __init__(self) -> None:
        self.casts: list[Any] = []
        self.cast_seen = threading.Event()

    def echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value

    def note(self, ctxt: dict[str, Any], value: Any = None) -> None:
        self.casts.append(value)
        self.cast_seen.set()


@pytest.fixture
def redis_transport(redis: str, unique: str) -> Iterator[dovecote.Transport]:
    transport = dovecote.get_transport(redis)
    yield transport
    transport.cleanup()
    delete_queues(f"test_{unique}", f"test_{unique}.s1")


def test_redis_an_item_that_is_no_kombu_message_is_logged_and_dropped(
    redis_transport: dovecote.Transport, topic: str
) -> None:
    injector = RedisInjector()
    try:
        with serve(redis_transport, Target(topic=topic, server="s1"), [Api()]), \
                structlog.testing.capture_logs() as logs:
            injector.put_item(topic, b"\xff not json")
            injector.put_item(topic, b'{"body": "e30=", "headers": {}}')  # no properties
            assert wait_until(lambda: injector.depth(topic) == 0)
            client = dovecote.get_rpc_client(redis_transport, Target(topic=topic),
                                             timeout=PATIENCE)
            assert client.call({}, "echo", value="after") == "after"
        dropped = [e for e in logs if e["event"] == "message.malformed"]
        assert len(dropped) == 2, dropped
        assert not [e for e in logs if e["event"] in {"listener.crashed",
                                                      "listener.connection_lost"}]
    finally:
        injector.close()


def test_redis_fanout_reaches_only_the_listeners_subscribed_then(
    redis_transport: dovecote.Transport, topic: str
) -> None:
    """REDIS_LIMITS["fanout"]: a fanout cast sent before a server listens is
    gone; one sent once ``start()`` returned arrives."""
    assert "PUB/SUB" in REDIS_LIMITS["fanout"]
    fanout = dovecote.get_rpc_client(redis_transport, Target(topic=topic)).prepare(fanout=True)
    fanout.cast({}, "note", value="before")
    api = Api()
    with serve(redis_transport, Target(topic=topic, server="s1"), [api]):
        fanout.cast({}, "note", value="after")
        assert api.cast_seen.wait(PATIENCE)
        client = dovecote.get_rpc_client(redis_transport, Target(topic=topic, server="s1"),
                                         timeout=PATIENCE)
        assert client.call({}, "echo", value=1) == 1
    assert api.casts == ["after"]


def test_redis_at_least_once_cannot_report_an_unroutable_call(
    redis_transport: dovecote.Transport, topic: str
) -> None:
    """REDIS_LIMITS["mandatory"]: no listener ever bound the topic, and Redis has
    no mandatory returns, so the call waits for its timeout instead of raising
    MessageUndeliverable as on RabbitMQ."""
    client = dovecote.get_rpc_client(redis_transport, Target(topic=topic), timeout=0.5)
    with pytest.raises(dovecote.MessagingTimeout):
        client.call({}, "echo", transport_options={"at_least_once": True})


def test_redis_a_reply_nobody_reads_expires(redis: str) -> None:
    """Without mandatory publishing a reply to a caller that is gone would stay
    in Redis: its list gets ``rabbit_transient_queues_ttl`` as an expiry."""
    import redis as redis_client

    transport = dovecote.get_transport(f"{redis}?rabbit_transient_queues_ttl=90")
    reply_q = f"reply_gone_{uuid.uuid4().hex}"
    client = redis_client.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        transport.driver.send_reply(reply_q, '{"result": 1}', msg_id="m")  # type: ignore[attr-defined]
        assert client.llen(reply_q) == 1
        assert 0 < client.pttl(reply_q) <= 90_000
    finally:
        client.delete(reply_q)
        client.close()
        transport.cleanup()


def test_without_the_redis_client_other_transports_work_and_redis_says_what_to_install() -> None:
    """kombu's Redis module cannot be imported without the Redis client; that
    must cost only ``kombu+redis://`` users, with an error naming the extra."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['redis'] = None\n"
        "import dovecote\n"
        "dovecote.get_transport('rabbit://guest:guest@127.0.0.1:5672/').cleanup()\n"
        "try:\n"
        "    dovecote.get_transport('kombu+redis://127.0.0.1:6379/0')\n"
        "except dovecote.InvalidTransportURL as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert "pip install 'dovecote[redis]'" in out


def test_redis_an_unacknowledged_message_naming_no_queue_cannot_stop_the_consumers(
    redis: str, unique: str,
) -> None:
    """A sender writes a message's exchange and routing key itself on Redis. One
    left unacknowledged with both empty (its consumer died holding it) made
    kombu's restore, which any consumer of the database runs on old entries,
    fail with ``DataError`` and keep the entry: every consumer failed on it
    again, for good. Restoring it now drops it (logged); a message that names
    its queue is still put back there."""
    import kombu
    import redis as redis_client  # dovecote[redis]

    from dovecote.drivers.kombu._redis import redis_transport

    database = 9  # a database of this test's own: a broken entry stops every consumer in it
    client = redis_client.Redis(host="127.0.0.1", port=6379, db=database)
    queue = f"restore_{unique}"

    def unacked(tag: str, routing_key: str) -> None:
        payload = {"body": "{}", "content-encoding": "utf-8",
                   "content-type": "application/json", "headers": {},
                   "properties": {"delivery_tag": tag, "body_encoding": "", "priority": "",
                                  "delivery_info": {"exchange": "", "routing_key": routing_key}}}
        client.hset("unacked", tag, json.dumps([payload, "", routing_key]))
        client.zadd("unacked_index", {tag: 1.0})  # long past kombu's visibility timeout

    unacked("hostile", "")
    unacked("fine", queue)
    connection = kombu.Connection(f"redis://127.0.0.1:6379/{database}",
                                  transport=redis_transport())
    try:
        channel = connection.channel()
        with structlog.testing.capture_logs() as logs:
            channel.qos.restore_by_tag("hostile")
            channel.qos.restore_by_tag("fine")
        assert client.zcard("unacked_index") == 0
        assert client.hlen("unacked") == 0
        assert client.llen(queue) == 1  # put back where it came from
        assert [e["reason"] for e in logs if e["event"] == "message.malformed"] == [
            ("an unacknowledged message names no queue to go back to (exchange '', "
             "routing key ''), dropped")]
    finally:
        connection.release()
        client.flushdb()
        client.close()
