"""Raw access to the test Redis behind ``kombu+redis://``, and the list of what
kombu's Redis transport cannot do (:data:`REDIS_LIMITS`, the transports guide's "Redis
limits" table; ``tests/drivers/test_redis_transport.py`` checks the rows that are
behaviour).

kombu's Redis transport keeps a queue as a Redis list named after it (messages
are ``LPUSH``-ed, consumers ``BRPOP`` them), each message a JSON envelope
``{"body": <base64>, "headers": {...}, "properties": {...}, "content-type": ...,
"content-encoding": ...}``; bindings of a topic exchange are members
``<routing key>\\x06\\x16<pattern>\\x06\\x16<queue>`` of the set
``_kombu.binding.<exchange>``; fanout goes through PUB/SUB. A peer on Redis can
push anything into a list, so the tests push crafted envelopes (and items that
are no envelope at all) straight into the queues, as the RabbitMQ tests publish
raw bodies.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import dovecote

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 0
#: kombu's separator inside a binding member.
_SEP = "\x06\x16"

#: What kombu's Redis transport cannot give, by key (the transports guide's "Redis limits"
#: table). No test of the behaviour suites needs a skip on Redis today.
REDIS_LIMITS: dict[str, str] = {
    "confirms": "no publisher confirms or basic.nack: a publish returns once Redis "
                "took the LPUSH",
    "mandatory": "no mandatory returns: a message to a topic no queue is bound to is "
                 "dropped, so at_least_once cannot raise MessageUndeliverable",
    "ttl": "no per-message TTL: a call's request never expires in its queue",
    "expires": "x-expires only on lists kombu declared itself: a reply to a caller "
               "that is gone gets rabbit_transient_queues_ttl as its list's expiry",
    "fanout": "fanout is PUB/SUB: a fanout cast reaches only listeners subscribed at "
              "that moment, and nothing waits in a fanout queue",
    "redelivery": "an unacknowledged message returns only after kombu's "
                  "visibility_timeout (restored by a later consumer), not when its "
                  "connection drops",
    "amqp_frames": "AMQP-level frames, properties and header tables do not exist on "
                   "Redis (a message is a JSON envelope)",
    "broker_kill": "no broker-side connection kill (rabbitmqctl) on Redis",
    "prefetch": "no broker-side prefetch: kombu's Redis consumer takes what its QoS "
                "allows, the rest stays in the list",
    "queue_arguments": "queue arguments (quorum, ha) are ignored by "
                       "kombu's Redis transport",
}


def is_redis(transport: dovecote.Transport | str) -> bool:
    """Whether ``transport`` (or a URL) is ``kombu+redis://``."""
    url = transport if isinstance(transport, str) else str(transport.url)
    return url.startswith(("kombu+redis", "kombu+rediss"))


def client() -> Any:
    """A redis-py client on the test Redis (imported here: only Redis runs need it)."""
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)


def envelope(body: str | bytes, headers: dict[str, Any] | None = None, *,
             queue: str = "", content_type: str = "application/json",
             content_encoding: str | None = None) -> str:
    """kombu's Redis envelope around ``body`` (text is sent as UTF-8), as a
    publish on the default exchange with routing key ``queue`` writes it."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if content_encoding is None:
        content_encoding = "binary" if isinstance(body, bytes) else "utf-8"
    return json.dumps({
        "body": base64.b64encode(data).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers or {},
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue},
            "delivery_mode": 2,
            "delivery_tag": str(uuid.uuid4()),
            "priority": 0,
        },
    })


class RedisInjector:
    """Pushes raw messages into kombu's Redis lists, bypassing dovecote."""

    def __init__(self) -> None:
        self._client = client()

    def put(self, queue: str, body: Any, headers: dict[str, Any] | None = None) -> None:
        """``LPUSH`` a well-formed envelope around ``body`` onto ``queue``."""
        if not isinstance(body, str | bytes):
            body = json.dumps(body)
        self._client.lpush(queue, envelope(body, headers, queue=queue))

    def put_item(self, queue: str, item: str | bytes) -> None:
        """``LPUSH`` ``item`` as it is: anything, even no envelope at all."""
        self._client.lpush(queue, item)

    def take(self, queue: str) -> list[bytes]:
        """Remove every message waiting in ``queue``; return their bodies."""
        bodies = []
        while (item := self._client.rpop(queue)) is not None:
            bodies.append(base64.b64decode(json.loads(item)["body"]))
        return bodies

    def depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (its list's length)."""
        return int(self._client.llen(queue))

    def close(self) -> None:
        self._client.close()


def delete_queues(*names: str) -> None:
    """Delete the lists of ``names`` and every binding to them."""
    redis = client()
    try:
        wanted = set(names)
        for key in redis.scan_iter(match="_kombu.binding*", count=1000):
            if redis.type(key) != b"set":
                continue
            for member in redis.smembers(key):
                if member.decode("utf-8", "replace").rsplit(_SEP, 1)[-1] in wanted:
                    redis.srem(key, member)
        if names:
            redis.delete(*names)
    finally:
        redis.close()
