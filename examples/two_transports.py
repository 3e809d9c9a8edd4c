"""One RPC server listening on two transports at once: the in-process
``memory://`` and a broker (RabbitMQ). Calls arrive through both and are
served by the same endpoint object.

Run:

    python examples/two_transports.py [BROKER_URL [TOPIC]]

With ``BROKER_URL`` (``rabbit://guest:guest@127.0.0.1:5672/``, say; ``bash
scripts/ensure-rabbitmq.sh`` starts one) the second transport is that broker;
without it, a second in-process broker (``memory://two-transports-broker``)
stands in for it, so the example never reaches for a broker you did not name.
``TOPIC`` defaults to ``two-transports``. While it runs, another process could
call it through the broker as well (``dovecote call BROKER_URL TOPIC greet
--args '{"name": "x"}'``); the calls below come from this process so that it
runs by itself, and it deletes the queues it made on the broker when it is done.

What it shows:

* ``get_rpc_server(memory, target, endpoints)`` makes a server with one
  listener; ``server.listen(broker, target)`` adds another, here after
  ``start()`` (any time works). Each listener is an actor of its own polling its
  transport; both feed the same dispatcher, workers and endpoints.
* The endpoint keeps one count of its calls, whichever transport they came
  through.
* ``server.actors()`` shows one listener actor per transport, with what each
  took, and one dispatcher and one set of workers for both.
* ``server.remove_listener(handle)`` stops one listener; the server goes on
  serving through the other.

If the broker cannot be reached, ``server.listen()`` raises
``MessageDeliveryFailure`` (the driver opens its listener in the calling
thread); the example says so on stderr and exits with status 1.
"""

from __future__ import annotations

import collections
import sys
import threading
from typing import Any

import dovecote
from dovecote.testing import DeclaredQueues

BROKER_URL = sys.argv[1] if len(sys.argv) > 1 else "memory://two-transports-broker"
TOPIC = sys.argv[2] if len(sys.argv) > 2 else "two-transports"
MEMORY_URL = "memory://two-transports"


class Greeter:
    """One endpoint object for both transports: one call count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a plain endpoint runs on several workers at once
        self.calls = 0

    def greet(self, ctxt: dict[str, Any], name: str) -> str:
        with self._lock:
            self.calls += 1
            count = self.calls
        return f"hello {name}, call {count} of this endpoint"


def main() -> int:
    memory = dovecote.get_transport(MEMORY_URL)
    # On rabbit://, listen_retries=0: listening makes one connection attempt, no
    # retries (3 by default), so that a broker that is not there is reported at
    # once. (Other drivers do not read the option, and would warn about it.)
    retries = {"listen_retries": 0} if BROKER_URL.startswith("rabbit") else {}
    broker = dovecote.get_transport(BROKER_URL, **retries)
    # A demo tidies up: the queues it declares on the broker that were not there
    # before are deleted at the end. (A real service keeps its queues.)
    declared = DeclaredQueues(broker)
    target = dovecote.Target(topic=TOPIC, server="host-1")
    server = dovecote.get_rpc_server(memory, target, [Greeter()], executor="threading",
                                     max_workers=4)
    server.start()
    try:
        on_broker = server.listen(broker, target)  # a second listener, same endpoints
    except dovecote.MessageDeliveryFailure as exc:
        print(f"cannot listen on {broker.url}: {exc}", file=sys.stderr)
        server.stop()
        server.wait(10)
        memory.cleanup()
        broker.cleanup()
        return 1
    print(f"serving {TOPIC!r} on {memory.url} and {broker.url}")

    clients = {
        "memory": dovecote.get_rpc_client(memory, dovecote.Target(topic=TOPIC), timeout=10),
        "broker": dovecote.get_rpc_client(broker, dovecote.Target(topic=TOPIC), timeout=10),
    }
    for via, name in (("memory", "alice"), ("broker", "bob"), ("memory", "carol"),
                      ("broker", "dave")):
        print(f"via {via}: {clients[via].call({}, 'greet', name=name)}")

    # One listener actor per transport, each counting what it took; one dispatcher
    # and one pool of workers behind them.
    records = server.actors()
    print("actors:")
    for record in sorted((r for r in records if r["kind"] == "listener"),
                         key=lambda r: str(r["transport"])):
        print(f"  listener on {record['transport']}: took {record['handled']}")
    kinds = collections.Counter(record["kind"] for record in records)
    print(f"  and {kinds['dispatcher']} dispatcher, {kinds['worker']} workers for both")

    server.remove_listener(on_broker)  # drains, then closes; memory goes on
    print(f"broker listener removed; via memory: "
          f"{clients['memory'].call({}, 'greet', name='erin')}")

    server.stop()
    server.wait(10)
    declared.delete()
    memory.cleanup()
    broker.cleanup()
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
