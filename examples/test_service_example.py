"""A small service and its tests, written with dovecote's pytest plugin.

Run the tests on the in-process transport, then the same tests on RabbitMQ:

    python -m pytest examples/test_service_example.py
    python -m pytest examples/test_service_example.py --dovecote-url=rabbit://guest:guest@127.0.0.1:5672/

The service: an inventory that answers ``stock`` and ``reserve`` over RPC and
sends an ``inventory.reserved`` notification for each reservation; a second
service keeps a tally of those notifications. The plugin gives each test a
transport (``dovecote_transport``), a topic of its own (``dovecote_topic``)
and what the ``test`` notifier driver kept (``dovecote_notifications``);
``dovecote.testing`` gives ``running``, ``wait_for`` and ``call_endpoint``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import dovecote
from dovecote.testing import call_endpoint, running, wait_for

# -- the service ------------------------------------------------------------------


class OutOfStock(Exception):
    """Asked for more than is left (part of ``reserve``'s contract)."""


class Inventory:
    """The RPC endpoint."""

    target = dovecote.Target(namespace="inventory", version="1.1")

    def __init__(self, notifier: dovecote.Notifier, stock: dict[str, int]) -> None:
        self.notifier = notifier
        self.stock_by_sku = dict(stock)
        self._lock = threading.Lock()

    def stock(self, ctxt: dict[str, Any], sku: str) -> int:
        return self.stock_by_sku.get(sku, 0)

    @dovecote.expected_exceptions(OutOfStock)
    def reserve(self, ctxt: dict[str, Any], sku: str, quantity: int) -> dict[str, Any]:
        with self._lock:
            left = self.stock_by_sku.get(sku, 0) - quantity
            if left < 0:
                raise OutOfStock(f"only {left + quantity} of {sku} left")
            self.stock_by_sku[sku] = left
        self.notifier.info(ctxt, "inventory.reserved", {"sku": sku, "quantity": quantity})
        return {"sku": sku, "left": left}


class Tally:
    """A notification endpoint: counts what was reserved."""

    def __init__(self) -> None:
        self.reserved: dict[str, int] = {}

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
             payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        if event_type == "inventory.reserved":
            sku = payload["sku"]
            self.reserved[sku] = self.reserved.get(sku, 0) + payload["quantity"]


def inventory_server(transport: dovecote.Transport, topic: str,
                     inventory: Inventory) -> Any:
    return dovecote.get_rpc_server(transport, dovecote.Target(topic=topic), [inventory])


def inventory_client(transport: dovecote.Transport, topic: str) -> dovecote.RPCClient:
    return dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=10).prepare(
        namespace="inventory", version="1.0")


# -- its tests ----------------------------------------------------------------------


@pytest.fixture
def inventory(dovecote_transport: dovecote.Transport) -> Inventory:
    """The endpoint, notifying through the ``test`` driver (kept in memory)."""
    notifier = dovecote.Notifier(dovecote_transport, publisher_id="inventory.1", driver="test")
    return Inventory(notifier, {"apple": 5})


def test_reserve_over_the_transport(dovecote_transport: dovecote.Transport,
                                    dovecote_topic: str, inventory: Inventory,
                                    dovecote_notifications: Any) -> None:
    client = inventory_client(dovecote_transport, dovecote_topic)
    with running(inventory_server(dovecote_transport, dovecote_topic, inventory)):
        assert client.call({}, "reserve", sku="apple", quantity=2) == {"sku": "apple", "left": 3}
        # This transport allows no module of ours (allowed_remote_exmods): a RemoteError.
        with pytest.raises(dovecote.RemoteError) as caught:
            client.call({}, "reserve", sku="apple", quantity=10)
        assert caught.value.exc_type == "OutOfStock"
    dovecote_notifications.assert_sent("inventory.reserved", priority="info",
                                       payload={"sku": "apple", "quantity": 2})


def test_a_cast_is_handled(dovecote_transport: dovecote.Transport, dovecote_topic: str,
                           inventory: Inventory) -> None:
    server = inventory_server(dovecote_transport, dovecote_topic, inventory)
    client = inventory_client(dovecote_transport, dovecote_topic)
    with running(server), wait_for(server, "reserve", count=2) as waited:
        client.cast({}, "reserve", sku="apple", quantity=4)
        client.cast({}, "reserve", sku="apple", quantity=4)
    assert sorted(record.outcome for record in waited.records) == ["expected_error", "ok"]
    assert [type(error).__name__ for error in waited.errors] == ["OutOfStock"]
    assert inventory.stock_by_sku["apple"] == 1


def test_notifications_reach_the_tally(dovecote_transport: dovecote.Transport,
                                       dovecote_topic: str) -> None:
    tally = Tally()
    listener = dovecote.get_notification_listener(
        dovecote_transport, [dovecote.Target(topic=dovecote_topic)], [tally])
    notifier = dovecote.Notifier(dovecote_transport, publisher_id="inventory.1",
                                 topics=[dovecote_topic])
    with running(listener), wait_for(listener, "info", count=2):
        notifier.info({}, "inventory.reserved", {"sku": "apple", "quantity": 1})
        notifier.info({}, "inventory.reserved", {"sku": "apple", "quantity": 2})
    assert tally.reserved == {"apple": 3}


def test_reserve_without_a_transport(inventory: Inventory, dovecote_notifications: Any) -> None:
    assert call_endpoint(inventory, "reserve", namespace="inventory", sku="apple",
                         quantity=1) == {"sku": "apple", "left": 4}
    with pytest.raises(OutOfStock, match="only 4 of apple left"):
        call_endpoint(inventory, "reserve", namespace="inventory", sku="apple", quantity=9)
    with pytest.raises(dovecote.UnsupportedVersion):  # a client of a newer, incompatible API
        call_endpoint(inventory, "stock", namespace="inventory", version="2.0", sku="apple")
    assert len(dovecote_notifications.by_event_type("inventory.reserved")) == 1
