"""The server half of ``bench_deployed``: run as ``python bench_deployed_server.py
LIB KIND TOPIC EXPECT``, it serves one library's RPC server (``rpc``) or
notification listener (``notify``) on ``TOPIC``, says ``ready``, and reports
(one JSON line) the wall time it was ready (serving) and of its first and last
message, its CPU seconds
and its context switches (all threads, ``getrusage``) once ``EXPECT`` messages
were handled; ``EXPECT`` 0 serves until stdin closes, -1 counts until stdin
closes and then reports (one of several processes competing on a topic).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

URL = os.environ.get("DOVECOTE_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
RAW = URL.replace("rabbit://", "amqp://", 1).rstrip("/") + "//"
WAIT = 180.0


class Counted:
    """Counts handled messages; notes the wall time of the first and the last."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.count = 0
        self.first = self.last = 0.0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> None:
        now = time.time()
        with self._lock:
            self.count += 1
            if self.count == 1:
                self.first = now
            if self.expect < 0:
                self.last = now
            elif self.count == self.expect:
                self.last = now
                self.done.set()


class RpcSink:
    def __init__(self, counted: Counted) -> None:
        self.counted = counted

    def tick(self, ctxt: Any, i: int) -> None:
        self.counted.hit()

    def ping(self, ctxt: Any, i: int) -> int:
        return i


class NotifySink:
    def __init__(self, counted: Counted) -> None:
        self.counted = counted

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.counted.hit()


def _usage() -> tuple[float, int]:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime, used.ru_nvcsw + used.ru_nivcsw


@contextlib.contextmanager
def _dovecote_server(kind: str, topic: str, counted: Counted) -> Iterator[None]:
    import dovecote

    transport = dovecote.get_transport(URL)
    if kind == "rpc":
        server = dovecote.get_rpc_server(transport, dovecote.Target(topic=topic, server="bench"),
                                         [RpcSink(counted)], executor="threading")
    else:
        server = dovecote.get_notification_listener(
            transport, [dovecote.Target(topic=topic)], [NotifySink(counted)],
            executor="threading")
    server.start()
    server.wait_ready(30)
    try:
        yield
    finally:
        server.stop()
        server.wait(30)
        transport.cleanup()


@contextlib.contextmanager
def _oslo_server(kind: str, topic: str, counted: Counted) -> Iterator[None]:
    import oslo_messaging
    from bench_rabbit import oslo_conf

    if kind == "rpc":
        transport = oslo_messaging.get_rpc_transport(oslo_conf(), url=URL)
        server = oslo_messaging.get_rpc_server(
            transport, oslo_messaging.Target(topic=topic, server="bench"), [RpcSink(counted)])
    else:
        transport = oslo_messaging.get_notification_transport(oslo_conf(), url=URL)
        server = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [NotifySink(counted)])
    server.start()
    try:
        yield
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


@contextlib.contextmanager
def _raw_server(kind: str, topic: str, counted: Counted) -> Iterator[None]:
    """One kombu consumer, prefetch 64, acknowledging each message; a request
    with a ``reply_q`` gets its answer published there."""
    from bench_deployed import raw_queue
    from bench_kombu_raw import drain_until
    from kombu import Connection, Consumer, Producer

    queue = raw_queue(kind, topic)
    stop = threading.Event()
    conn = Connection(RAW)
    producer = Producer(conn.channel())

    def on_message(body: Any, message: Any) -> None:
        if isinstance(body, dict) and "reply_q" in body:
            producer.publish({"result": body["i"]}, routing_key=body["reply_q"])
        else:
            counted.hit()
        message.ack()

    channel = conn.channel()
    channel.basic_qos(0, 64, False)
    Consumer(channel, [queue], callbacks=[on_message]).consume()
    reader = threading.Thread(target=drain_until, args=(conn, stop), daemon=True)
    reader.start()
    try:
        yield
    finally:
        stop.set()
        reader.join(5)
        conn.release()


SERVERS = {"dovecote": _dovecote_server, "oslo": _oslo_server, "raw": _raw_server}


def serve(lib: str, kind: str, topic: str, expect: int) -> None:
    """The server process: ``ready`` once serving; with ``expect`` > 0 a JSON
    result line once that many messages were handled, then exit; with 0, serve
    until stdin closes."""
    from bench_rabbit import quiet

    quiet()
    counted = Counted(expect)
    with SERVERS[lib](kind, topic, counted):
        cpu0, switches0 = _usage()
        ready = time.time()
        print("ready", flush=True)
        if expect < 0:  # one of several competing: count until told to stop
            sys.stdin.read()
            print(json.dumps({"first": counted.first, "last": counted.last,
                              "count": counted.count}), flush=True)
        elif expect:
            if not counted.done.wait(WAIT):
                print(json.dumps({"error": f"handled {counted.count} of {expect}"}), flush=True)
                return
            cpu1, switches1 = _usage()
            print(json.dumps({"ready": ready, "first": counted.first, "last": counted.last,
                              "count": expect,
                              "cpu": cpu1 - cpu0, "switches": switches1 - switches0}),
                  flush=True)
        else:
            sys.stdin.read()



if __name__ == "__main__":
    lib, kind, topic, expect = sys.argv[1:5]
    serve(lib, kind, topic, int(expect))
