"""dovecote in one file, on the in-process ``memory://`` transport (no broker).

Run: python examples/quickstart.py

An RPC server with a plain endpoint and a pykka actor endpoint, a client that
calls, casts and calls asynchronously, a notifier and a notification
listener, one call traced through the actors, and a look at the live actors. Give a broker
URL to run the same thing on RabbitMQ (it deletes the queues it made when it is done):

    python examples/quickstart.py rabbit://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import sys
import threading

import pykka

import dovecote
from dovecote.testing import DeclaredQueues

URL = sys.argv[1] if len(sys.argv) > 1 else "memory://quickstart"


class ComputeAPI:
    """A plain endpoint: its public methods are callable remotely."""

    target = dovecote.Target(version="1.2")

    def resize(self, ctxt: dict, instance: str, flavor: str = "m1.small") -> dict:
        return {"instance": instance, "flavor": flavor, "by": ctxt.get("user")}

    @dovecote.expected_exceptions(ValueError)  # the caller's mistake: logged at info, not error
    def fail(self, ctxt: dict) -> None:
        raise ValueError("this instance cannot be resized")


class Counter(pykka.ThreadingActor):
    """An actor endpoint: its calls run one at a time in the actor's thread."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def add(self, ctxt: dict, amount: int) -> int:
        self.total += amount
        return self.total


class MeterEndpoint:
    """Receives ``info`` notifications whose event type starts with ``compute.``."""

    filter_rule = dovecote.NotificationFilter(event_type=r"^compute\.")

    def __init__(self) -> None:
        self.seen = threading.Event()

    def info(self, ctxt: dict, publisher_id: str, event_type: str, payload: dict,
             metadata: dict) -> None:
        print(f"notification: {event_type} from {publisher_id}: {payload}")
        self.seen.set()


def main() -> None:
    # No logging set-up: dovecote is quiet (WARNING and above, to stderr) until the
    # application configures logging; each actor keeps its recent events anyway.
    transport = dovecote.get_transport(URL)
    # Run on a broker, a demo tidies up: the queues it declares that were not there
    # before are deleted at the end. (A real service keeps its queues.)
    declared = DeclaredQueues(transport)
    counter = Counter.start()
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic="compute", server="host-1"), [ComputeAPI(), counter],
        executor="threading", max_workers=4,
    )
    meter = MeterEndpoint()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic="notifications")], [meter], pool="metering",
    )
    server.start()
    listener.start()

    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="compute"), timeout=10)
    ctxt = {"user": "alice"}
    print("resize ->", client.call(ctxt, "resize", instance="i-1"))
    print("pinned to host-1, version 1.1 ->", client.prepare(server="host-1", version="1.1").call(
        ctxt, "resize", instance="i-2", flavor="m1.large"))
    first, second = client.call(ctxt, "add", amount=5), client.call(ctxt, "add", amount=2)
    print("actor endpoint ->", first, second)
    future = client.call_async(ctxt, "add", amount=10)
    print("call_async ->", future.get(timeout=10))
    client.prepare(fanout=True).cast(ctxt, "add", amount=1)
    try:
        client.call(ctxt, "fail")
    except ValueError as exc:  # a builtin exception keeps its type
        print("remote ValueError ->", str(exc).splitlines()[0])

    notifier = dovecote.Notifier(transport, publisher_id="compute.host-1")
    notifier.info(ctxt, "compute.instance.resize.end", {"instance": "i-1"})
    meter.seen.wait(10)

    resize = next(e for e in server.events() if e.get("method") == "resize")
    print(f"trace of the first resize call ({resize['msg_id'][:8]}...):")
    for step in server.trace(resize["msg_id"]):
        print(f"  +{step['elapsed_ms']:7.3f} ms  {step['kind']:10} {step['event']}")

    for record in server.actors():
        print(f"actor {record['kind']:10} alive={record['alive']} handled={record['handled']}"
              f" target={record['target']}")

    for running in (server, listener):
        running.stop()
        running.wait()
    counter.stop()
    declared.delete()
    transport.cleanup()
    print("done")


if __name__ == "__main__":
    main()
