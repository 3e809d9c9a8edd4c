"""Notifications survive a broker outage: N notifications are published (each
confirmed by RabbitMQ), the broker's app is stopped while a listener is in the
middle of them and started again; every notification is handled at least once,
the duplicates are counted and reported, and the listener reconnects by itself.

The broker is a RabbitMQ node of the test session's own (``own_node``): its
``rabbitmqctl stop_app`` disturbs no other test. The outage is kept to the few
seconds stop_app + start_app take, and the node is started again in a
``finally`` whatever happens. The queues are durable (a transient queue does not
outlive a broker restart) on an exchange of this test's own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import amqp
import pytest
import structlog.testing
from _rpc_support import PATIENCE
from conftest import OwnNode
from test_notifications import Recorder, listening

import dovecote

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

COUNT = 500
#: The endpoint blocks on this notification until the broker is down.
STALL_AT = 100
#: Fast reconnection, so the listener is back soon after the broker.
RECONNECT = "rabbit_retry_interval=0.2&rabbit_retry_backoff=0.2&rabbit_interval_max=1"


#: Per broker transport: the URL's options (durable queues, fast reconnection) and
#: the events its listener logs when its connection is lost and when it is back.
BROKERS = {
    "rabbit": (f"amqp_durable_queues=true&{RECONNECT}",
               {"listener.connection_lost", "listener.reconnected"}),
    "amqp1": ("amqp_durable_queues=true&reconnect_delay=0.2&reconnect_max_delay=1",
              {"listener.reconnecting", "listener.connected"}),
}


@pytest.mark.parametrize("kind", list(BROKERS))
def test_broker_restart_while_consuming_loses_nothing(
    own_node: OwnNode, unique: str, kind: str,
) -> None:
    exchange, topic = f"faults_{unique}", f"faults_{unique}"
    options, recovery_events = BROKERS[kind]
    base = own_node.url if kind == "rabbit" else own_node.amqp1_url
    transport = dovecote.get_transport(f"{base}?{options}", control_exchange=exchange)
    calls = Recorder()
    stalled, resume = threading.Event(), threading.Event()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
                 metadata: Any) -> None:
            if payload == STALL_AT and not stalled.is_set():
                stalled.set()
                resume.wait(30)
            calls.add(payload)

    outage = 0.0
    try:
        with structlog.testing.capture_logs() as logs:
            with listening(transport, [dovecote.Target(topic=topic)], [Endpoint()],
                           max_workers=1):
                notifier = dovecote.Notifier(transport, publisher_id="faults", topics=[topic])
                for n in range(COUNT):
                    notifier.info({}, "fault.test", n)  # returns once the broker confirmed
                assert stalled.wait(PATIENCE), "the listener did not get going"
                started = time.monotonic()
                try:
                    own_node.ctl("stop_app")
                    resume.set()  # what the listener took goes on, its acks cannot
                finally:
                    own_node.back()
                    outage = time.monotonic() - started
                # recovered by itself: the rest, the redeliveries, and something new
                notifier.info({}, "fault.after", COUNT)
                calls.wait_until(lambda items: len(set(items)) > COUNT, 30)
            handled = list(calls.items)
        missing = set(range(COUNT + 1)) - set(handled)
        duplicates = len(handled) - len(set(handled))
        print(f"\n{kind}: broker outage {outage:.1f}s: {COUNT + 1} sent, "
              f"{len(set(handled))} handled, {duplicates} duplicated, {len(missing)} lost")
        assert not missing, f"lost {len(missing)} notifications: {sorted(missing)[:20]}"
        events = {line["event"] for line in logs}
        assert recovery_events <= events, events
    finally:
        resume.set()
        own_node.back()  # whatever happened above, leave the node running
        conn = amqp.Connection(host=f"127.0.0.1:{own_node.port}", userid="guest",
                               password="guest")
        conn.connect()
        try:
            channel = conn.channel()
            channel.queue_delete(f"{topic}.info")
            channel.exchange_delete(exchange)
        finally:
            conn.close()
        transport.cleanup()
