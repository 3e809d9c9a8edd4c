"""The ``amqp1://`` driver against raw python-qpid-proton, in one run, as ratios.

Both sides talk to the same RabbitMQ (AMQP 1.0 plugin) and confirm every send:

* call round trip: driver ``send`` with a ``PendingReply`` -> a responder thread
  ``poll``\\s a listener and ``reply``\\s -> the reply thread delivers it; against
  a raw Proton request to a queue, a raw responder, and a raw reply receiver.
* cast throughput: driver ``send`` loop while a thread drains a listener, against
  a raw ``BlockingSender`` loop while a thread drains a raw receiver.

* the whole stack: an RPC client calling and casting to an RPC server on
  actors, against the same raw numbers.

Run: ``python benchmarks/bench_amqp1.py [--calls 1000] [--casts 3000]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import amqp
from proton import Message
from proton.utils import BlockingConnection

import dovecote
from dovecote import Target
from dovecote.drivers.base import PendingReply

URL = "amqp1://guest:guest@127.0.0.1:5672/"


def proton_connection() -> BlockingConnection:
    return BlockingConnection(
        "amqp://127.0.0.1:5672", timeout=10, user="guest", password="guest",
        allowed_mechs="PLAIN", allow_insecure_mechs=True, virtual_host="vhost:/",
    )


def delete_queues(*names: str) -> None:
    conn = amqp.Connection(host="127.0.0.1:5672")
    conn.connect()
    for name in names:
        channel = conn.channel()
        channel.queue_delete(name)
        channel.close()
    conn.close()


def responder(poll_once: Callable[[], bool], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            poll_once()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- dovecote ----------------------------------------------------------------------------
def dovecote_calls(n: int) -> list[float]:
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    server, client = dovecote.get_transport(URL), dovecote.get_transport(URL)
    listener = server.driver.listen(Target(topic=topic))
    stop = threading.Event()

    def serve() -> bool:
        for msg in listener.poll(0.2, 10):
            msg.reply(result=msg.message["args"]["i"])
        return True

    thread = responder(serve, stop)
    times = []
    try:
        for i in range(n + 20):
            started = time.perf_counter()
            pending = PendingReply(uuid.uuid4().hex)
            client.driver.expect_reply(pending)
            client.driver.send(Target(topic=topic), {}, {"method": "m", "args": {"i": i}},
                               reply=pending, timeout=10)
            reply = pending.wait(10)
            client.driver.forget(pending)
            assert reply is not None
            assert reply["result"] == i
            if i >= 20:  # warm-up
                times.append(time.perf_counter() - started)
    finally:
        stop.set()
        thread.join()
        listener.cleanup()
        client.cleanup()
        server.cleanup()
        delete_queues(topic)
    return times


def dovecote_casts(n: int) -> float:
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    server, client = dovecote.get_transport(URL), dovecote.get_transport(URL)
    listener = server.driver.listen(Target(topic=topic))
    received = 0
    done = threading.Event()
    stop = threading.Event()

    def drain() -> bool:
        nonlocal received
        received += len(listener.poll(0.2, 100))
        if received >= n:
            done.set()
            stop.set()
        return True

    client.driver.send(Target(topic=topic), {}, {"method": "warm", "args": {}})
    received = -1
    thread = responder(drain, stop)
    started = time.perf_counter()
    for i in range(n):
        client.driver.send(Target(topic=topic), {}, {"method": "m", "args": {"i": i}})
    done.wait(60)
    elapsed = time.perf_counter() - started
    thread.join()
    listener.cleanup()
    client.cleanup()
    server.cleanup()
    delete_queues(topic)
    return n / elapsed


class _Endpoint:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = threading.Event()

    def ping(self, ctxt: dict, i: int) -> int:
        return i

    def tick(self, ctxt: dict) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


def server_level(calls: int, casts: int) -> tuple[list[float], float]:
    """The whole stack: RPC client -> amqp1 -> listener actor -> dispatcher -> worker."""
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(URL)
    endpoint = _Endpoint(casts)
    server = dovecote.get_rpc_server(transport, Target(topic=topic), [endpoint])
    server.start()
    client = dovecote.get_rpc_client(transport, Target(topic=topic), timeout=30)
    client.call({}, "ping", i=-1)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        client.call({}, "ping", i=i)
        samples.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(casts):
        client.cast({}, "tick")
    endpoint.done.wait(120)
    rate = casts / (time.perf_counter() - started)
    server.stop()
    server.wait()
    transport.cleanup()
    delete_queues(topic)
    return samples, rate


# -- raw Proton ----------------------------------------------------------------------------
def raw_calls(n: int) -> list[float]:
    queue, reply_q = f"bench_raw_{uuid.uuid4().hex[:8]}", f"reply_{uuid.uuid4().hex}"
    server, client = proton_connection(), proton_connection()
    requests = server.create_receiver(f"/queue/{queue}", credit=10)
    replies_out = server.create_sender("/queue")
    requests_out = client.create_sender(f"/queue/{queue}")
    replies = client.create_receiver(f"/queue/{reply_q}", credit=10)
    stop = threading.Event()

    def serve() -> bool:
        try:
            request = requests.receive(timeout=0.2)
        except Exception:
            return True
        requests.accept()
        replies_out.send(Message(body=request.body, inferred=True, subject=request.reply_to))
        return True

    thread = responder(serve, stop)
    times = []
    try:
        for i in range(n + 20):
            started = time.perf_counter()
            body = dovecote._wire.encode_envelope({"method": "m", "args": {"i": i}}).encode()
            requests_out.send(Message(body=body, inferred=True, reply_to=reply_q))
            replies.receive(timeout=10)
            replies.accept()
            if i >= 20:
                times.append(time.perf_counter() - started)
    finally:
        stop.set()
        thread.join()
        server.close()
        client.close()
        delete_queues(queue, reply_q)
    return times


def raw_casts(n: int) -> float:
    queue = f"bench_raw_{uuid.uuid4().hex[:8]}"
    server, client = proton_connection(), proton_connection()
    receiver = server.create_receiver(f"/queue/{queue}", credit=100)
    sender = client.create_sender(f"/queue/{queue}")
    done = threading.Event()

    def drain() -> None:
        for _ in range(n):
            receiver.receive(timeout=60)
            receiver.accept()
        done.set()

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    body = dovecote._wire.encode_envelope({"method": "m", "args": {"i": 0}}).encode()
    started = time.perf_counter()
    for _ in range(n):
        sender.send(Message(body=body, inferred=True))
    done.wait(60)
    elapsed = time.perf_counter() - started
    thread.join()
    server.close()
    client.close()
    delete_queues(queue)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--casts", type=int, default=3000)
    args = parser.parse_args()

    ours_calls = statistics.median(dovecote_calls(args.calls)) * 1000
    raw_call = statistics.median(raw_calls(args.calls)) * 1000
    ours_casts = dovecote_casts(args.casts)
    raw_cast = raw_casts(args.casts)
    print(f"call round trip, median of {args.calls}:")
    print(f"  dovecote amqp1 driver  {ours_calls:8.3f} ms")
    print(f"  raw python-qpid-proton {raw_call:8.3f} ms")
    print(f"  ratio (dovecote / raw) {ours_calls / raw_call:8.2f}x")
    print(f"cast throughput, {args.casts} confirmed casts:")
    print(f"  dovecote amqp1 driver  {ours_casts:8.0f} msg/s")
    print(f"  raw python-qpid-proton {raw_cast:8.0f} msg/s")
    print(f"  ratio (dovecote / raw) {ours_casts / raw_cast:8.2f}x")
    samples, rate = server_level(args.calls, args.casts)
    server_call = statistics.median(samples) * 1000
    print("whole stack (get_rpc_client -> get_rpc_server on actors):")
    print(f"  call round trip        {server_call:8.3f} ms = {server_call / raw_call:5.2f}x raw")
    print(f"  casts end to end       {rate:8.0f} msg/s = {rate / raw_cast:5.2f}x raw")


if __name__ == "__main__":
    main()
