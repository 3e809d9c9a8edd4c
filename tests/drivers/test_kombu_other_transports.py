"""``kombu+SCHEME://``: the rabbit driver on another kombu transport (kombu's in-memory one)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import dovecote


class Api:
    def __init__(self) -> None:
        self.poked = threading.Event()

    def add(self, ctxt: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def poke(self, ctxt: dict[str, Any]) -> None:
        self.poked.set()


class Meter:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.got = threading.Event()

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        self.seen.append((event_type, payload))
        self.got.set()


def test_rpc_and_notifications_over_kombu_memory(unique: str) -> None:
    transport = dovecote.get_transport(f"kombu+memory://localhost/{unique}")
    api, meter = Api(), Meter()
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic=f"k_{unique}"), [api])
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic=f"n_{unique}")], [meter])
    server.start()
    listener.start()
    try:
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic=f"k_{unique}"),
                                         timeout=5)
        assert client.call({}, "add", a=2, b=3) == 5
        client.prepare(fanout=True).cast({}, "poke")
        assert api.poked.wait(5)
        with pytest.raises(dovecote.NoSuchMethod) as missing:
            client.call({}, "nope")
        assert missing.value.method == "nope"
        notifier = dovecote.Notifier(transport, publisher_id="p", topics=[f"n_{unique}"])
        notifier.info({}, "compute.x", {"id": 1})
        assert meter.got.wait(5)
        assert meter.seen == [("compute.x", {"id": 1})]
    finally:
        for running in (server, listener):
            running.stop()
            assert running.wait(10)
        transport.cleanup()
