"""Speed as deployed: the server in a process of its own, the clients in this one.

No service runs its callers in its own process, so these rows start each
library's server (dovecote, oslo.messaging with its threading executor, and a
raw kombu consumer) as a fresh process,
(``bench_deployed_server.py``), wait for its ``ready`` line, and drive it from here over RabbitMQ:

* ``drain_rpc`` / ``drain_notify``: a backlog of casts (notifications on
  ``<topic>.info``) published before the server process starts; the rate is the
  server's own count over the time from when it serves (its listener consuming,
  after its connection is up) to its last message, both on its own clock;
* ``casts_1`` / ``casts_8``: casts from 1 and 8 client threads of this process,
  timed from the first publish here to the server's last message (one host,
  one wall clock);
* ``calls_8``: calls from 8 threads sharing one client; ``call_rtt``: the
  median sequential call round trip (raw kombu: a request/reply ping-pong).

Each server process also reports its context switches (voluntary and not,
all its threads, from ``getrusage``) and CPU seconds per message handled.
Rounds take the libraries in turn (``bench_rabbit.run``). structlog and logging
are left as users get them for dovecote (unconfigured); oslo.messaging's
logging is kept to errors.

Run: ``python benchmarks/bench_deployed.py [--quick] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
URL = os.environ.get("DOVECOTE_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
RAW = URL.replace("rabbit://", "amqp://", 1).rstrip("/") + "//"
EXCHANGE = "openstack"
THREADS = 8
WAIT = 180.0
LIBS = ("dovecote", "oslo", "raw")
#: Server processes competing on one topic in the scale-out rows.
SCALE = (1, 2, 4)


# -- this side: queues, publishers, the scenarios -----------------------------------------------
def raw_queue(kind: str, topic: str) -> Any:
    """The queue a library's server consumes, declared as oslo.messaging and
    dovecote declare it (so it can be filled before the server starts)."""
    from kombu import Exchange, Queue

    exchange = Exchange(EXCHANGE, type="topic", durable=False, auto_delete=False)
    name = topic if kind == "rpc" else f"{topic}.info"
    return Queue(name, exchange, routing_key=name, durable=False, auto_delete=False)


@contextlib.contextmanager
def server_process(lib: str, kind: str, topic: str, expect: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "bench_deployed_server.py"), lib, kind, topic, str(expect)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        assert proc.stdout is not None
        line = _line(proc.stdout)
        if line != "ready":
            raise RuntimeError(f"{lib} server did not start: {line!r}")
        yield proc
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _line(stream: IO[str]) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    if not result:
        raise RuntimeError("the server process said nothing in time")
    return result[0].strip()


def result_of(proc: subprocess.Popen[str]) -> dict[str, float]:
    assert proc.stdout is not None
    outcome: dict[str, float] = json.loads(_line(proc.stdout))
    if "error" in outcome:
        raise RuntimeError(str(outcome["error"]))
    return outcome


class Publisher:
    """A library's client side on this process: ``send(count)`` casts or
    notifies ``count`` times; ``call(i)`` one call."""

    def __init__(self, lib: str, kind: str, topic: str) -> None:
        self.lib, self.kind, self.topic = lib, kind, topic
        self._stack = contextlib.ExitStack()
        self._local = threading.local()
        if lib == "dovecote":
            import dovecote as api
        elif lib == "oslo":
            import oslo_messaging as api  # type: ignore[no-redef]
        if lib == "raw":
            from kombu import Connection

            self._connections: list[Any] = []
            self._conn_lock = threading.Lock()
            self._connection = Connection
            return
        if lib == "oslo":
            from bench_rabbit import oslo_conf

            transport = api.get_rpc_transport(oslo_conf(), url=URL)
        else:
            transport = api.get_transport(URL)
        self._stack.callback(transport.cleanup)
        if kind == "rpc":
            self.client = api.get_rpc_client(transport, api.Target(topic=topic), timeout=60)
        else:
            self.notifier = api.Notifier(transport, publisher_id="bench", driver="messagingv2",
                                         topics=[topic])

    def producer(self) -> Any:
        """Raw kombu: this thread's confirming producer (a connection of its own)."""
        producer = getattr(self._local, "producer", None)
        if producer is None:
            from kombu import Producer

            conn = self._connection(RAW, transport_options={"confirm_publish": True})
            with self._conn_lock:
                self._connections.append(conn)
            producer = self._local.producer = Producer(conn.channel())
        return producer

    def send(self, count: int) -> None:
        if self.lib == "raw":
            producer, queue = self.producer(), raw_queue(self.kind, self.topic)
            for i in range(count):
                producer.publish({"method": "tick", "args": {"i": i}}, exchange=queue.exchange,
                                 routing_key=queue.routing_key, delivery_mode=2)
        elif self.kind == "rpc":
            for i in range(count):
                self.client.cast({}, "tick", i=i)
        else:
            for i in range(count):
                self.notifier.info({}, "bench.event", {"i": i})

    def close(self) -> None:
        self._stack.close()
        if self.lib == "raw":
            for conn in self._connections:
                conn.release()


def declare(kind: str, topic: str) -> None:
    from kombu import Connection

    with Connection(RAW) as conn:
        raw_queue(kind, topic)(conn.default_channel).declare()


def delete(kind: str, topic: str) -> None:
    from bench_kombu_raw import delete_queues

    delete_queues(URL, raw_queue(kind, topic).name, f"{topic}.bench")


def drain(lib: str, kind: str, n: int) -> dict[str, float]:
    """A backlog of ``n`` published first, then a fresh server process drains it."""
    topic = f"deployed_{lib}_{uuid.uuid4().hex[:8]}"
    declare(kind, topic)
    publisher = Publisher(lib, kind, topic)
    try:
        publisher.send(n)
        with server_process(lib, kind, topic, n) as proc:
            outcome = result_of(proc)
    finally:
        publisher.close()
        delete(kind, topic)
    # From the moment the server serves (its listener consuming) to its last
    # message: a server that takes the whole backlog in before its endpoint sees
    # the first one (oslo.messaging's does) is timed as fairly as one that does not.
    span = outcome["last"] - outcome["ready"]
    return {"count": n, "seconds": span, "switches": outcome["switches"] / n,
            "cpu_us": outcome["cpu"] / n * 1e6}


def casts(lib: str, n: int, threads: int) -> dict[str, float]:
    """``n`` casts from ``threads`` threads here to a server process there."""
    from bench_rabbit import in_threads

    topic = f"deployed_{lib}_{uuid.uuid4().hex[:8]}"
    declare("rpc", topic)
    publisher = Publisher(lib, "rpc", topic)
    try:
        with server_process(lib, "rpc", topic, n) as proc:
            if lib == "raw":  # a connection per thread, opened before the clock starts
                in_threads(lambda _count: publisher.producer(), threads, threads)
            started = time.time()
            in_threads(publisher.send, n, threads)
            outcome = result_of(proc)
    finally:
        publisher.close()
        delete("rpc", topic)
    return {"count": n, "seconds": outcome["last"] - started,
            "switches": outcome["switches"] / n, "cpu_us": outcome["cpu"] / n * 1e6}


def calls(lib: str, n: int, threads: int) -> dict[str, Any]:
    """``n`` calls from ``threads`` threads (1: the round trips are kept)."""
    from bench_kombu_raw import raw_calls_to
    from bench_rabbit import in_threads

    topic = f"deployed_{lib}_{uuid.uuid4().hex[:8]}"
    declare("rpc", topic)
    publisher = None if lib == "raw" else Publisher(lib, "rpc", topic)
    samples: list[float] = []
    try:
        with server_process(lib, "rpc", topic, 0):
            if publisher is None:
                samples = raw_calls_to(raw_queue("rpc", topic), n)
                return {"samples": samples}

            def work(count: int) -> None:
                assert publisher is not None
                for i in range(count):
                    began = time.perf_counter()
                    if publisher.client.call({}, "ping", i=i) != i:
                        raise RuntimeError("wrong answer")
                    samples.append(time.perf_counter() - began)

            seconds = in_threads(work, n, threads)
    finally:
        if publisher is not None:
            publisher.close()
        delete("rpc", topic)
    return {"count": n, "seconds": seconds, "samples": samples}


def scale_out(lib: str, processes: int, n: int) -> dict[str, float]:
    """A backlog of ``n`` casts drained by ``processes`` server processes
    competing on one topic: every process's count over the time from the first
    message any of them handled to the last."""
    from kombu import Connection

    topic = f"deployed_{lib}_{uuid.uuid4().hex[:8]}"
    declare("rpc", topic)
    publisher = Publisher(lib, "rpc", topic)
    try:
        publisher.send(n)
        with contextlib.ExitStack() as running:
            procs = [running.enter_context(server_process(lib, "rpc", topic, -1))
                     for _ in range(processes)]
            with Connection(RAW) as conn:  # the backlog gone from the queue
                queue = raw_queue("rpc", topic)(conn.default_channel)
                deadline = time.monotonic() + WAIT
                while queue.queue_declare(passive=True).message_count and \
                        time.monotonic() < deadline:
                    time.sleep(0.05)
            outcomes: list[dict[str, float]] = []
            for proc in procs:  # the last few taken finish; then each reports
                time.sleep(0.2)
                assert proc.stdin is not None
                proc.stdin.close()
                outcomes.append(result_of(proc))
    finally:
        publisher.close()
        delete("rpc", topic)
    handled = sum(int(o["count"]) for o in outcomes)
    if handled != n:
        raise RuntimeError(f"{lib}: {processes} processes handled {handled} of {n}")
    busy = [o for o in outcomes if o["count"]]
    span = max(o["last"] for o in busy) - min(o["first"] for o in busy)
    return {"count": n - 1, "seconds": span}


def scenarios(lib: str) -> dict[str, Callable[[int], Any]]:
    rows: dict[str, Callable[[int], Any]] = {
        "drain_rpc": lambda n: drain(lib, "rpc", n),
        "drain_notify": lambda n: drain(lib, "notify", n),
        "casts_1": lambda n: casts(lib, n, 1),
        "casts_8": lambda n: casts(lib, n, THREADS),
        "call_rtt": lambda n: calls(lib, n, 1),
    }
    if lib != "raw":
        rows["calls_8"] = lambda n: calls(lib, n, THREADS)
    if lib != "oslo":
        for count in SCALE:
            rows[f"scale_{count}"] = functools.partial(scale_out, lib, count)
    return rows


def main() -> None:
    from bench_deployed_report import report, run_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 1 round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    results = run_all(quick=args.quick, rounds=args.rounds)
    report(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
