"""Endpoints that are pykka actors: state without locks, one call at a time, and
a look at the server's actors and their events. On ``memory://`` (no broker).

Run: python examples/actor_endpoints.py [BROKER_URL]

With a broker URL (``rabbit://guest:guest@127.0.0.1:5672/``) it runs there, and
deletes the queues it made when it is done.

What it shows:

* Put a pykka ``ActorRef`` in the endpoint list and its public methods become
  RPC methods. Calls to one actor reach its mailbox in arrival order and run
  one at a time in the actor's own thread, however many clients call at once
  and however many workers the server has: the actor's state needs no lock.
  Here 8 client threads reserve 160 widgets from an ``Inventory`` actor that
  has 100: exactly 100 reservations succeed, never two at once, all in one
  thread, and the stock ends at 0 (never below).
* A slow actor does not hold up the others: a ``Reports`` actor is busy with a
  long report the whole time the inventory calls are answered.
* ``server.actors()`` lists the server's actors (listener, dispatcher,
  workers) and the endpoint actors; ``server.events()`` gives each one's recent
  events (recorded whatever the logging set-up), and ``server.trace(msg_id)``
  follows one call from the listener into the endpoint actor.

Nothing goes to stderr: logging is left unconfigured, so dovecote only
writes warnings and errors there, and a refused reservation is an expected
exception (``@dovecote.expected_exceptions``), logged at info.
"""

from __future__ import annotations

import collections
import concurrent.futures
import sys
import threading
from typing import Any

import pykka

import dovecote
from dovecote.testing import DeclaredQueues

URL = sys.argv[1] if len(sys.argv) > 1 else "memory://actor-endpoints"
CLIENTS, CALLS_EACH, STOCK = 8, 20, 100


class Inventory(pykka.ThreadingActor):
    """Stock of items. Plain attributes, no lock: only this actor's thread runs
    its methods, one call at a time."""

    use_daemon_thread = True

    def __init__(self, stock: dict[str, int]) -> None:
        super().__init__()
        self.stock = dict(stock)
        self.threads: set[str] = set()  # the threads its methods ran in
        self.running = 0  # calls running right now
        self.most_at_once = 0

    @dovecote.expected_exceptions(ValueError)  # the caller's problem: logged at info
    def reserve(self, ctxt: dict[str, Any], item: str, quantity: int = 1) -> int:
        """Take ``quantity`` of ``item``; return what is left."""
        self.threads.add(threading.current_thread().name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            left = self.stock.get(item, 0)  # read ...
            if left < quantity:
                raise ValueError(f"only {left} {item} left")
            self.stock[item] = left - quantity  # ... then write: safe, nobody runs between
            return self.stock[item]
        finally:
            self.running -= 1

    def stats(self, ctxt: dict[str, Any]) -> dict[str, Any]:
        return {"stock": self.stock, "threads": sorted(self.threads),
                "most_at_once": self.most_at_once}


class Reports(pykka.ThreadingActor):
    """A slow endpoint actor: its report takes until ``release`` is set."""

    use_daemon_thread = True

    def __init__(self, started: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.release = release

    def monthly_report(self, ctxt: dict[str, Any]) -> str:
        self.started.set()
        finished = self.release.wait(10)  # stands for a long computation
        return "report ready" if finished else "report gave up"


def main() -> None:
    transport = dovecote.get_transport(URL)
    # Run on a broker, a demo tidies up: the queues it declares that were not there
    # before are deleted at the end. (A real service keeps its queues.)
    declared = DeclaredQueues(transport)
    started, release = threading.Event(), threading.Event()
    inventory = Inventory.start({"widget": STOCK})
    reports = Reports.start(started, release)
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic="shop", server="host-1"), [inventory, reports],
        executor="threading", max_workers=4,
        event_history=1000,  # per actor: enough to keep every event of this run
    )
    server.start()
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="shop"), timeout=10)

    # A long report first: the Reports actor is busy with it from here on.
    report = client.call_async({}, "monthly_report")
    started.wait(10)

    def buyer(n: int) -> tuple[int, int]:
        """One client thread: CALLS_EACH reservations of one widget each."""
        ok = refused = 0
        for _ in range(CALLS_EACH):
            try:
                client.call({"buyer": n}, "reserve", item="widget")
                ok += 1
            except ValueError:  # a builtin exception comes back as a ValueError
                refused += 1
        return ok, refused

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        outcomes = list(pool.map(buyer, range(CLIENTS)))
    reserved = sum(ok for ok, _ in outcomes)
    refused = sum(no for _, no in outcomes)
    print(f"{CLIENTS} clients x {CALLS_EACH} calls: {reserved} reserved, {refused} refused"
          f" (stock was {STOCK})")
    stats = client.call({}, "stats")
    print(f"stock now: {stats['stock']}")
    print(f"most reserve() calls running at once: {stats['most_at_once']}")
    print(f"threads reserve() ran in: {stats['threads']}")
    try:
        report.get(timeout=0)  # a pykka future: Timeout while the call is running
        print("report still running meanwhile: False")
    except pykka.Timeout:
        print("report still running meanwhile: True")
    release.set()
    print(f"report: {report.get(timeout=10)}")

    # What the server looks like from inside: its actors, then one actor's events.
    print("actors:")
    kinds = collections.Counter((r["kind"], r["actor"]) for r in server.actors() if r["alive"])
    for (kind, actor), count in sorted(kinds.items()):
        print(f"  {kind:10} {actor:16} x{count}")
    # Each call ends in one event with its outcome: dispatch.ok, or dispatch.failed
    # (here "expected_error": the ValueError declared with expected_exceptions).
    ended = collections.Counter(
        f"{e['method']} {e['outcome']}" for e in server.events(actor=inventory.actor_urn)
        if "outcome" in e
    )
    print("Inventory's calls by outcome:",
          ", ".join(f"{k} x{v}" for k, v in sorted(ended.items())))
    reserve = next(e for e in server.events(actor=inventory.actor_urn)
                   if e.get("method") == "reserve")
    print("trace of one reserve call:")
    for step in server.trace(reserve["msg_id"]):
        print(f"  {step['kind']:10} {step['actor']:16} {step['event']}")

    server.stop()
    server.wait(10)
    inventory.stop()
    reports.stop()
    declared.delete()
    transport.cleanup()
    print("done")


if __name__ == "__main__":
    main()
