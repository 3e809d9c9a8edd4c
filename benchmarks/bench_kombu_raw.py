"""The ``rabbit://`` driver against raw kombu, in one run, as ratios.

Both sides talk to the same RabbitMQ with publisher confirms on:

* call round trip: driver ``send`` with a ``PendingReply`` -> a responder thread
  ``poll``\\s a listener and ``reply``\\s -> the reply thread delivers it; against
  raw kombu: publish a request, a raw responder drains and publishes the reply,
  the caller drains its reply queue.
* cast throughput: driver ``send`` loop while a thread drains a listener, against
  a raw ``Producer.publish`` loop while a thread drains a raw consumer.
* the floor under any confirmed cast: py-amqp alone (no kombu) on one channel
  with publisher confirms, publishing persistent ~100-byte bodies one at a time
  (each waits for its confirm) to a fresh queue nothing in this process
  consumes (``raw_publish_confirmed``).

Run: ``python benchmarks/bench_kombu_raw.py [--calls 1000] [--casts 3000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import threading
import time
import uuid
from typing import Any

import amqp
from kombu import Connection, Consumer, Exchange, Producer, Queue

import dovecote
from dovecote import Target, _wire
from dovecote.drivers.base import PendingReply

URL = "rabbit://guest:guest@127.0.0.1:5672/"
RAW = "amqp://guest:guest@127.0.0.1:5672//"


def amqp_connection(url: str = URL) -> amqp.Connection:
    """A connected py-amqp connection to the broker of a ``rabbit://`` (or
    ``amqp1://``: the same RabbitMQ) transport URL."""
    parsed = dovecote.TransportURL.parse(url)
    host = parsed.hosts[0]
    conn = amqp.Connection(host=f"{host.hostname}:{host.port or 5672}",
                           userid=host.username or "guest", password=host.password or "guest",
                           virtual_host=parsed.virtual_host or "/")
    conn.connect()
    return conn


def delete_queues(url: str, *names: str) -> None:
    """Remove queues a benchmark declared that outlive it (not auto-delete)."""
    conn = amqp_connection(url)
    try:
        for name in names:
            channel = conn.channel()
            channel.queue_delete(name)
            channel.close()
    finally:
        conn.close()


def drain_until(conn: Any, done: threading.Event) -> None:
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.2)


# -- dovecote -------------------------------------------------------------------------
def dovecote_calls(n: int) -> list[float]:
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    with dovecote.get_transport(URL) as transport:
        driver = transport.driver
        listener = driver.listen(Target(topic=topic))
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                for message in listener.poll(0.1, 10):
                    message.reply(result=message.message["args"]["i"])

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        times = []
        for i in range(n):
            started = time.perf_counter()
            pending = PendingReply(_wire.new_id())
            driver.expect_reply(pending)
            driver.send(Target(topic=topic), {}, {"method": "m", "args": {"i": i}},
                        reply=pending, timeout=10)
            answer = pending.wait(10)
            driver.forget(pending)
            assert answer is not None
            times.append(time.perf_counter() - started)
        stop.set()
        server.join()
        listener.cleanup()
    return times


def dovecote_casts(n: int) -> float:
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    with dovecote.get_transport(URL) as transport:
        driver = transport.driver
        listener = driver.listen(Target(topic=topic))
        seen = 0

        def drain() -> None:
            nonlocal seen
            while seen < n:
                seen += len(listener.poll(0.2, 100))

        reader = threading.Thread(target=drain, daemon=True)
        started = time.perf_counter()
        reader.start()
        for i in range(n):
            driver.send(Target(topic=topic), {}, {"method": "m", "args": {"i": i}})
        reader.join()
        elapsed = time.perf_counter() - started
        listener.cleanup()
    return n / elapsed


# -- raw kombu --------------------------------------------------------------------------
def raw_calls(n: int) -> list[float]:
    topic = f"rawbench_{uuid.uuid4().hex[:8]}"
    reply_q = f"reply_{uuid.uuid4().hex}"
    exchange = Exchange("openstack", type="topic", durable=False)
    options = {"confirm_publish": True}
    with Connection(RAW, transport_options=options) as caller, \
            Connection(RAW, transport_options=options) as server_conn:
        request_queue = Queue(topic, exchange, routing_key=topic, auto_delete=True)
        replies = Queue(reply_q, auto_delete=True)
        answer: list[Any] = []
        got = threading.Event()
        done = threading.Event()
        server_producer = Producer(server_conn.channel())

        def on_request(body: Any, message: Any) -> None:
            server_producer.publish({"result": body["i"]}, routing_key=body["reply_q"])
            message.ack()

        def on_reply(body: Any, message: Any) -> None:
            answer.append(body)
            got.set()

        Consumer(server_conn.channel(), [request_queue], callbacks=[on_request]).consume()
        Consumer(caller.default_channel, [replies], callbacks=[on_reply], no_ack=True).consume()
        server = threading.Thread(target=drain_until, args=(server_conn, done), daemon=True)
        server.start()
        producer = Producer(caller.channel())
        times = []
        for i in range(n):
            started = time.perf_counter()
            got.clear()
            producer.publish({"i": i, "reply_q": reply_q}, exchange=exchange, routing_key=topic)
            while not got.is_set():
                with contextlib.suppress(TimeoutError):
                    caller.drain_events(timeout=1)
            times.append(time.perf_counter() - started)
        done.set()
        server.join()
    return times


def raw_calls_to(request_queue: Queue, n: int) -> list[float]:
    """The caller's half of :func:`raw_calls`, for a server elsewhere (another
    process) consuming ``request_queue``: ``n`` sequential request/reply round
    trips, in seconds each."""
    reply_q = f"reply_{uuid.uuid4().hex}"
    with Connection(RAW, transport_options={"confirm_publish": True}) as caller:
        replies = Queue(reply_q, auto_delete=True)
        got = threading.Event()
        Consumer(caller.default_channel, [replies], callbacks=[lambda body, message: got.set()],
                 no_ack=True).consume()
        producer = Producer(caller.channel())
        times = []
        for i in range(n):
            started = time.perf_counter()
            got.clear()
            producer.publish({"i": i, "reply_q": reply_q}, exchange=request_queue.exchange,
                             routing_key=request_queue.routing_key)
            while not got.is_set():
                with contextlib.suppress(TimeoutError):
                    caller.drain_events(timeout=1)
            times.append(time.perf_counter() - started)
    return times


def raw_casts(n: int) -> float:
    topic = f"rawbench_{uuid.uuid4().hex[:8]}"
    exchange = Exchange("openstack", type="topic", durable=False)
    options = {"confirm_publish": True}
    with Connection(RAW, transport_options=options) as sender, Connection(RAW) as receiver:
        queue = Queue(topic, exchange, routing_key=topic, auto_delete=True)
        seen = 0
        finished = threading.Event()

        def on_message(body: Any, message: Any) -> None:
            nonlocal seen
            seen += 1
            message.ack()
            if seen >= n:
                finished.set()

        channel = receiver.channel()
        channel.basic_qos(0, 100, False)
        Consumer(channel, [queue], callbacks=[on_message]).consume()
        reader = threading.Thread(target=drain_until, args=(receiver, finished), daemon=True)
        producer = Producer(sender.channel())
        started = time.perf_counter()
        reader.start()
        for i in range(n):
            producer.publish({"i": i}, exchange=exchange, routing_key=topic, delivery_mode=2)
        reader.join()
        return n / (time.perf_counter() - started)


def raw_publish_confirmed(n: int, url: str = URL, size: int = 100, *,
                          durable: bool = False) -> float:
    """py-amqp alone, one channel in confirm mode: ``n`` persistent
    (``delivery_mode=2``) bodies of ``size`` bytes published one at a time, each
    waiting for its confirm, to a fresh queue nothing in this process consumes;
    messages per second. The queue is deleted afterwards. It is not durable by
    default, as dovecote's and oslo.messaging's topic queues are not
    (``amqp_durable_queues=False``): RabbitMQ then confirms without writing to
    disk; a durable one confirms after the disk, several times slower here."""
    queue = f"rawbench_pub_{uuid.uuid4().hex[:8]}"
    body = b"x" * size
    conn = amqp_connection(url)
    try:
        channel = conn.channel()
        channel.queue_declare(queue, durable=durable, auto_delete=False)
        channel.confirm_select()
        channel._confirm_selected = True  # or basic_publish_confirm selects again

        def publish() -> None:
            channel.basic_publish_confirm(amqp.Message(body, delivery_mode=2),
                                          exchange="", routing_key=queue)

        for _ in range(20):  # warm-up, off the clock
            publish()
        started = time.perf_counter()
        for _ in range(n):
            publish()
        elapsed = time.perf_counter() - started
        channel.queue_delete(queue)
    finally:
        conn.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--casts", type=int, default=3000)
    args = parser.parse_args()
    ours, theirs = dovecote_calls(args.calls), raw_calls(args.calls)
    ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"call round trip (median): dovecote {ours_ms:.2f} ms, raw kombu {theirs_ms:.2f} ms, "
          f"ratio {ours_ms / theirs_ms:.2f}")
    ours_rate, theirs_rate = dovecote_casts(args.casts), raw_casts(args.casts)
    print(f"cast throughput: dovecote {ours_rate:.0f}/s, raw kombu {theirs_rate:.0f}/s, "
          f"ratio {ours_rate / theirs_rate:.2f}")
    print(f"raw py-amqp persistent publish, confirmed one at a time: "
          f"{raw_publish_confirmed(args.casts):.0f}/s")


if __name__ == "__main__":
    main()
