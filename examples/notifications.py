"""Notifications: listener pools, requeue, dead letters and replaying them.
On ``memory://`` (no broker), which has pools, requeue and dead letters as
RabbitMQ has them.

Run: python examples/notifications.py

It runs on a broker too (``python examples/notifications.py
rabbit://guest:guest@127.0.0.1:5672/``); its topics and pools are then named
after the run, and it deletes their queues when it is done.

What it shows:

1. Pools. Each pool gets every notification once; the members of one pool
   share them. Two listeners in pool ``metering`` split 10 notifications
   between them (each handled by exactly one of the two), while the one
   listener in pool ``audit`` sees all 10.
2. Requeue, then dead letter. A listener with ``allow_requeue=True`` and
   ``max_redeliveries=2`` sends a notification back to its queue when its
   endpoint returns ``NotificationResult.REQUEUE`` or raises; on the third
   failure (the first delivery and 2 redeliveries) the notification is parked
   on the dead-letter queue ``<topic>.<priority>.dead`` with the reason.
   Nothing is dropped silently.
3. Dead letters. ``dovecote.take_dead_letters`` removes and returns them (with
   the reason and redelivery count): here an ``invoice.paid`` for an invoice
   that does not exist, read and dropped. ``dovecote.replay_dead_letters``
   sends them again as new notifications: here, once the endpoint is fixed, an
   invoice in a currency it did not know is booked.

dovecote logs every requeue (``notification.requeued``, a warning), every
endpoint exception (``dispatch.failed``, an error with its traceback) and
every dead letter (``notification.dead_lettered``, an error) on stderr:
with logging left unconfigured, those are the only lines there.
"""

from __future__ import annotations

import collections
import sys
import threading
import uuid
from typing import Any

import dovecote
from dovecote.testing import DeclaredQueues

URL = sys.argv[1] if len(sys.argv) > 1 else "memory://notifications"
#: Topics and pools of their own for each run, so that a run on a broker never
#: sees what an earlier run left in its queues.
RUN = uuid.uuid4().hex[:8]
EVENTS_TOPIC, BILLING_TOPIC = f"notifications_{RUN}", f"billing_{RUN}"
METERING_POOL, AUDIT_POOL = f"metering_{RUN}", f"audit_{RUN}"
PATIENCE = 10.0  # seconds: the longest any step of this example waits


class Tally:
    """Counts what endpoints handled; the main thread waits on it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: collections.Counter[str] = collections.Counter()  # who -> how many
        self.ids: list[int] = []  # the "n" of each notification handled

    def add(self, who: str, payload: dict[str, Any]) -> None:
        with self.cond:
            self.seen[who] += 1
            self.ids.append(payload["n"])
            self.cond.notify_all()

    def wait_for(self, total: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.ids) >= total, PATIENCE)


class Meter:
    """An ``info`` endpoint: records which listener got which notification."""

    def __init__(self, name: str, tally: Tally) -> None:
        self.name = name
        self.tally = tally

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
             payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.tally.add(self.name, payload)


class Billing:
    """Books ``invoice.paid`` notifications in EUR. It asks for a requeue when it
    does not know the invoice (yet), and raises ``KeyError`` for a currency it
    has no rate for: the bug this example fixes later."""

    def __init__(self) -> None:
        self.invoices = {7: "Acme"}  # invoice number -> customer
        self.rates = {"EUR": 1.0, "USD": 0.9}
        self.cond = threading.Condition()
        self.attempts: collections.Counter[int] = collections.Counter()
        self.booked: list[str] = []

    def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
             payload: dict[str, Any], metadata: dict[str, Any]) -> Any:
        invoice = payload["invoice"]
        try:
            if invoice not in self.invoices:
                # Maybe its invoice.created is still on its way: try again later.
                return dovecote.NotificationResult.REQUEUE
            rate = self.rates[payload["currency"]]  # KeyError: a currency without a rate
            with self.cond:
                self.booked.append(f"invoice {invoice} for {self.invoices[invoice]}: "
                                   f"{payload['amount']} {payload['currency']} = "
                                   f"{payload['amount'] * rate:.2f} EUR")
            return None  # handled: acknowledged
        finally:  # counted once the attempt's outcome is decided
            with self.cond:
                self.attempts[invoice] += 1
                self.cond.notify_all()

    def wait_attempts(self, invoice: int, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.attempts[invoice] >= count, PATIENCE)

    def wait_booked(self, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.booked) >= count, PATIENCE)


def pools(transport: dovecote.Transport) -> None:
    """Part 1: two listeners share pool ``metering``; pool ``audit`` sees everything."""
    metering, audit = Tally(), Tally()
    targets = [dovecote.Target(topic=EVENTS_TOPIC)]
    listeners = [
        dovecote.get_notification_listener(transport, targets, [Meter(name, metering)],
                                           pool=METERING_POOL)
        for name in ("member-1", "member-2")
    ]
    listeners.append(dovecote.get_notification_listener(
        transport, targets, [Meter("auditor", audit)], pool=AUDIT_POOL))
    for listener in listeners:
        listener.start()  # the pool's queue exists once start() returns

    notifier = dovecote.Notifier(transport, publisher_id="compute.host-1",
                                 topics=[EVENTS_TOPIC])
    for n in range(10):
        notifier.info({}, "compute.instance.update", {"n": n})
    if not (metering.wait_for(10) and audit.wait_for(10)):
        print("timed out waiting for the notifications")

    each_once = sorted(metering.ids) == list(range(10))
    split = ", ".join(f"{who} took {count}" for who, count in sorted(metering.seen.items()))
    print(f"pool metering: {len(metering.ids)} notifications, each handled once: {each_once};"
          f" {split}")
    print(f"pool audit: auditor took {audit.seen['auditor']}")
    for listener in listeners:
        listener.stop()
    for listener in listeners:
        listener.wait(PATIENCE)


def dead_letters(transport: dovecote.Transport) -> None:
    """Parts 2 and 3: requeue, dead letters, taking and replaying them."""
    billing = Billing()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic=BILLING_TOPIC)], [billing],
        allow_requeue=True, max_redeliveries=2,
    )
    listener.start()
    notifier = dovecote.Notifier(transport, publisher_id="payments.host-1",
                                 topics=[BILLING_TOPIC])

    # An invoice nobody knows: REQUEUE, twice more, then parked.
    notifier.info({"user": "alice"}, "invoice.paid",
                  {"invoice": 9, "amount": 50, "currency": "EUR"})
    # take_dead_letters waits (up to `timeout` seconds) for one to arrive.
    for dead in dovecote.take_dead_letters(transport, BILLING_TOPIC, "info", limit=1,
                                           timeout=PATIENCE):
        print(f"took dead letter: {dead.message['event_type']} {dead.message['payload']}"
              f" ctxt={dead.ctxt} redeliveries={dead.redeliveries} reason={dead.reason!r}")
    print(f"invoice 9 was tried {billing.attempts[9]} times; its dead letter is dropped")

    # An invoice in a currency without a rate: KeyError, twice more, then parked.
    notifier.info({"user": "bob"}, "invoice.paid",
                  {"invoice": 7, "amount": 120, "currency": "CHF"})
    billing.wait_attempts(7, 3)
    print(f"invoice 7 was tried {billing.attempts[7]} times (KeyError: 'CHF')")
    billing.rates["CHF"] = 1.05  # the fix, "deployed"
    print("fixed: the endpoint now has a rate for CHF")
    replayed = dovecote.replay_dead_letters(transport, BILLING_TOPIC, "info", limit=1,
                                            timeout=PATIENCE)
    print(f"replayed {replayed} dead letter(s)")
    print(f"booked {billing.booked[0]}" if billing.wait_booked(1) else "nothing booked")
    left = dovecote.take_dead_letters(transport, BILLING_TOPIC, "info", timeout=0.2)
    print(f"dead letters left: {len(left)}")
    listener.stop()
    listener.wait(PATIENCE)


def main() -> None:
    transport = dovecote.get_transport(URL)
    # Run on a broker, a demo tidies up: the queues it declares that were not there
    # before are deleted at the end. (A real service keeps its queues.)
    declared = DeclaredQueues(transport)
    try:
        pools(transport)
        dead_letters(transport)
    finally:
        declared.delete()
        transport.cleanup()
    print("done")


if __name__ == "__main__":
    main()
