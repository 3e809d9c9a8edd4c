"""Property-based fuzzing (hypothesis) of what a peer on Redis can push into
``kombu+redis://`` queues: not only hostile bodies inside kombu's envelope (that
is ``tests/fuzz/test_fuzz.py``, which runs on Redis too), but list items that are no
envelope at all, and envelopes with keys missing or of the wrong type. Every
item goes straight into the queue's Redis list with ``LPUSH``, into a running
RPC server and a running notification listener.

After every batch the server still answers a call, the listener still handles
a notification, every actor is alive; no thread died (``no_deaths``).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from _fuzz_strategies import JSON, RAW_BODIES
from _redis_support import RedisInjector, delete_queues, envelope
from _rpc_support import PATIENCE, running, serve
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import dovecote
from dovecote import Target
from dovecote.notify._listener import PRIORITIES

pytestmark = [pytest.mark.timeout(600), pytest.mark.usefixtures("no_deaths")]

_DELETE = object()
#: Where an envelope can be broken: a top-level key, or one of ``properties``.
_PLACES = ["body", "headers", "properties", "content-type", "content-encoding",
           "properties.body_encoding", "properties.delivery_tag",
           "properties.delivery_info", "properties.priority"]


@st.composite
def broken_envelope(draw: st.DrawFn) -> bytes:
    """kombu's envelope around a hostile body, with some keys deleted or replaced."""
    body = draw(RAW_BODIES)
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    item = json.loads(envelope(body))
    for place in draw(st.lists(st.sampled_from(_PLACES), min_size=1, max_size=3)):
        value = draw(st.just(_DELETE) | JSON | st.sampled_from(["rot13", "base64", "", "x"]))
        holder, key = (item["properties"], place[11:]) if place.startswith("properties.") \
            and isinstance(item.get("properties"), dict) else (item, place.split(".")[0])
        if value is _DELETE:
            holder.pop(key, None)
        else:
            holder[key] = value
    return json.dumps(item).encode()


#: Anything a peer can put in a Redis list.
REDIS_ITEMS = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=40).map(str.encode),
    JSON.map(lambda value: json.dumps(value).encode()),
    broken_envelope(),
)


def _settings() -> settings:
    """As ``tests/fuzz/test_fuzz.py`` on a broker: 100 examples unless
    ``DOVECOTE_FUZZ_EXAMPLES`` says otherwise, no shrinking on CI."""
    phases = [p for p in Phase if not (p is Phase.shrink and os.environ.get("CI") == "true")]
    return settings(max_examples=int(os.environ.get("DOVECOTE_FUZZ_EXAMPLES", "0")) or 100,
                    deadline=None, database=None, suppress_health_check=list(HealthCheck),
                    print_blob=True, phases=phases)


class Api:
    def echo(self, ctxt: dict[str, Any], value: Any = None) -> Any:
        return value


class Meter:
    def __init__(self) -> None:
        self.seen: set[Any] = set()
        self.cond = threading.Condition()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: dict[str, Any]) -> None:
        with self.cond:
            self.seen.add(payload)
            self.cond.notify_all()

    def wait_for(self, payload: Any) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: payload in self.seen, PATIENCE)


def test_redis_server_and_listener_survive_any_list_item(redis: str, unique: str) -> None:
    topic, notify_topic = f"rf_{unique}", f"rfn_{unique}"
    transport = dovecote.get_transport(redis)
    meter = Meter()
    listener = dovecote.get_notification_listener(
        transport, [Target(topic=notify_topic)], [meter], allow_requeue=True)
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=PATIENCE)
    notifier = dovecote.Notifier(transport, publisher_id="fuzz", topics=[notify_topic])
    injector = RedisInjector()
    rounds = [0]
    try:
        with serve(transport, Target(topic=topic, server="s1"), [Api()], max_workers=2) \
                as server, running(listener) as listening:

            @_settings()
            @given(items=st.lists(st.tuples(st.sampled_from(["rpc", "server", "notify"]),
                                            REDIS_ITEMS), min_size=1, max_size=6))
            def check(items: list[tuple[str, bytes]]) -> None:
                for where, item in items:
                    queue = {"rpc": topic, "server": f"{topic}.s1",
                             "notify": f"{notify_topic}.info"}[where]
                    injector.put_item(queue, item)
                rounds[0] += 1
                assert client.call({}, "echo", value=rounds[0]) == rounds[0]
                notifier.info({}, "fuzz.round", rounds[0])
                assert meter.wait_for(rounds[0]), f"round {rounds[0]} not handled"
                records = server.actors() + listening.actors()
                assert all(record["alive"] for record in records), records

            check()
    finally:
        injector.close()
        transport.cleanup()
        delete_queues(topic, f"{topic}.s1", f"{notify_topic}.info.dead",
                      *(f"{notify_topic}.{priority}" for priority in PRIORITIES))
