"""dovecote against oslo.messaging (threading executor) and raw kombu, on one
RabbitMQ, in one run, as ratios.

Scenarios (the same endpoint on both RPC libraries; servers and clients in this
process, each library on its own transport):

* casts end to end: from the first ``cast`` until the server's endpoint has
  handled all of them, with 1 and with 8 client threads sharing one client;
  raw kombu: publishers with publisher confirms (one connection per thread)
  and one consumer that acknowledges each message;
* sequential call round trip: the median over ``--calls`` calls; raw kombu: a
  request/reply ping-pong with a reply queue (``bench_kombu_raw.raw_calls``);
* calls from 8 threads sharing one client: calls per second.

Goals (issue 12; ``report.py`` checks them all in one run): casts >= 2.5x
oslo.messaging with 1 thread and >= 5x with 8; call round trip <= 1.3x the
raw kombu ping-pong; 8-thread calls >= 4x
oslo.messaging. Absolute numbers vary from machine to machine; the ratios,
measured in one run on one broker, are what to compare.

Each scenario runs in 3 rounds that take the libraries in turn, so a busy
moment on the machine hits all of them alike. Clients and servers of both
libraries share this process (and its GIL), as they do in the tests.

Run: ``python benchmarks/bench_rabbit.py [--quick]`` (the full run takes about
a minute and a half; ``--quick`` about ten seconds). For profiling:
``--only dovecote --scenario calls_8`` (e.g. under ``py-spy record --gil``).
``DOVECOTE_BENCH_RABBIT_URL`` overrides the broker (default
``rabbit://guest:guest@127.0.0.1:5672/``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue as queue_module
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench_kombu_raw import delete_queues, drain_until, raw_calls
from kombu import Connection, Consumer, Exchange, Producer, Queue

import dovecote

URL = os.environ.get("DOVECOTE_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
RAW = URL.replace("rabbit://", "amqp://", 1).rstrip("/") + "//"
THREADS = 8
WAIT = 120.0  # no scenario may take longer than this


class Sink:
    """The endpoint both libraries serve: ``ping`` answers, ``tick`` counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._expected = 0
        self._done = threading.Event()

    def _expect(self, n: int) -> threading.Event:
        with self._lock:
            self._count, self._expected = 0, n
            self._done.clear()
        return self._done

    def ping(self, ctxt: dict[str, Any], i: int) -> int:
        return i

    def tick(self, ctxt: dict[str, Any], i: int) -> None:
        with self._lock:
            self._count += 1
            if self._count == self._expected:
                self._done.set()


@dataclass
class Stack:
    """One library's client and server on one topic."""

    name: str
    client: Any
    sink: Sink


def split(n: int, threads: int) -> list[int]:
    return [n // threads + (1 if i < n % threads else 0) for i in range(threads)]


def in_threads(work: Callable[[int], None], n: int, threads: int) -> float:
    """Run ``work(count)`` in ``threads`` threads (``n`` in all); the seconds it took."""
    errors: list[BaseException] = []

    def run(count: int) -> None:
        try:
            work(count)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(c,)) for c in split(n, threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


# -- the scenarios, for either RPC library: each returns (count, seconds) or samples ----------
def casts(stack: Stack, n: int, threads: int) -> tuple[int, float]:
    """``n`` casts from ``threads`` threads, timed from the first publish until
    the endpoint has handled them all."""
    done = stack.sink._expect(n)

    def work(count: int) -> None:
        for i in range(count):
            stack.client.cast({}, "tick", i=i)

    started = time.perf_counter()
    in_threads(work, n, threads)
    if not done.wait(WAIT):
        raise RuntimeError(f"{stack.name}: the server handled too few casts")
    return n, time.perf_counter() - started


def call_round_trips(stack: Stack, n: int) -> list[float]:
    """``n`` sequential call round trips, in seconds each."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        stack.client.call({}, "ping", i=i)
        samples.append(time.perf_counter() - started)
    return samples


def threaded_calls(stack: Stack, n: int, threads: int) -> tuple[int, float]:
    """``n`` calls from ``threads`` threads sharing one client."""

    def work(count: int) -> None:
        for i in range(count):
            if stack.client.call({}, "ping", i=i) != i:
                raise RuntimeError("wrong answer")

    return n, in_threads(work, n, threads)


# -- the libraries ------------------------------------------------------------------------------
@contextlib.contextmanager
def dovecote_stack(event_history: int = 200, url: str = URL) -> Iterator[Stack]:
    """dovecote's client and server (``"threading"`` executor) on ``url``
    (``rabbit://`` or ``amqp1://``); their queues are deleted afterwards."""
    topic = f"bench_dc_{uuid.uuid4().hex[:8]}"
    sink = Sink()
    transport = dovecote.get_transport(url)
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic=topic, server="bench"), [sink], executor="threading",
        event_history=event_history,
    )
    server.start()
    try:
        client = dovecote.get_rpc_client(transport, dovecote.Target(topic=topic), timeout=30)
        yield Stack("dovecote", client, sink)
    finally:
        server.stop()
        server.wait(30)
        transport.cleanup()
        delete_queues(url, topic, f"{topic}.bench")


def oslo_conf() -> Any:
    import importlib

    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    for module, group in [("oslo_messaging._metrics.client", "oslo_messaging_metrics"),
                          ("oslo_messaging._tracing.client", "oslo_messaging_tracing")]:
        with contextlib.suppress(ImportError, AttributeError):
            conf.register_opts(getattr(importlib.import_module(module), group), group=group)
    conf([])
    return conf


@contextlib.contextmanager
def oslo_stack() -> Iterator[Stack]:
    import oslo_messaging

    topic = f"bench_oslo_{uuid.uuid4().hex[:8]}"
    sink = Sink()
    transport = oslo_messaging.get_rpc_transport(oslo_conf(), url=URL)
    # no executor argument: it is deprecated, and threading is the default
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server="bench"), [sink])
    assert server.executor_type == "threading"
    server.start()
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic), timeout=30)
        yield Stack("oslo.messaging", client, sink)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        delete_queues(URL, topic, f"{topic}.bench")


def raw_casts(n: int, threads: int) -> tuple[int, float]:
    """Raw kombu: ``threads`` confirmed publishers (a connection each, opened
    before the clock starts), one consumer acknowledging each message."""
    topic = f"rawbench_{uuid.uuid4().hex[:8]}"
    exchange = Exchange("openstack", type="topic", durable=False)
    queue = Queue(topic, exchange, routing_key=topic, auto_delete=True)
    seen = 0
    finished = threading.Event()

    def on_message(body: Any, message: Any) -> None:
        nonlocal seen
        message.ack()
        seen += 1
        if seen >= n:
            finished.set()

    with contextlib.ExitStack() as connections:
        receiver = connections.enter_context(Connection(RAW))
        channel = receiver.channel()
        channel.basic_qos(0, 100, False)
        Consumer(channel, [queue], callbacks=[on_message]).consume()
        producers: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        for _ in range(threads):
            sender = connections.enter_context(
                Connection(RAW, transport_options={"confirm_publish": True}))
            producers.put(Producer(sender.channel()))
        reader = threading.Thread(target=drain_until, args=(receiver, finished), daemon=True)
        reader.start()

        def work(count: int) -> None:
            producer = producers.get_nowait()
            for i in range(count):
                producer.publish({"method": "tick", "args": {"i": i}}, exchange=exchange,
                                 routing_key=topic, delivery_mode=2)

        started = time.perf_counter()
        in_threads(work, n, threads)
        if not finished.wait(WAIT):
            raise RuntimeError("raw kombu: too few messages arrived")
        elapsed = time.perf_counter() - started
        reader.join(WAIT)
    return n, elapsed


# -- the run --------------------------------------------------------------------------------------
def quiet() -> None:
    """oslo.messaging logs through logging: keep it to errors. dovecote is left
    as users get it (structlog unconfigured: quiet by default)."""
    logging.basicConfig(level=logging.ERROR)
    for name in ("oslo_messaging", "oslo.messaging", "amqp", "kombu"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # oslo.messaging imports oslo.service, which imports eventlet: not used here
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


Scenario = Callable[[int], Any]
SCENARIOS = ("casts_1", "casts_8", "call_rtt", "calls_8")


def scenarios(stack: Stack) -> dict[str, Scenario]:
    return {
        "casts_1": lambda n: casts(stack, n, 1),
        "casts_8": lambda n: casts(stack, n, THREADS),
        "call_rtt": lambda n: call_round_trips(stack, n),
        "calls_8": lambda n: threaded_calls(stack, n, THREADS),
    }


RAW_SCENARIOS: dict[str, Scenario] = {
    "casts_1": lambda n: raw_casts(n, 1),
    "casts_8": lambda n: raw_casts(n, THREADS),
    "call_rtt": raw_calls,
}


def pool(outcomes: list[Any]) -> float:
    """One number from a scenario's rounds: for round trips (lists of seconds)
    the median of every sample, for ``(count, seconds)`` total count over total
    time."""
    if isinstance(outcomes[0], list):
        return statistics.median(s for batch in outcomes for s in batch)
    return sum(c for c, _ in outcomes) / sum(t for _, t in outcomes)


def run(libraries: dict[str, dict[str, Scenario]], sizes: argparse.Namespace,
        only: set[str], names: Sequence[str] = SCENARIOS,
        progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """Every scenario of ``names`` (in ``only``), in ``sizes.rounds`` rounds that
    take the libraries that have it in turn (so a busy moment on the machine hits
    all of them alike); a scenario ``name`` runs ``getattr(sizes, name)`` times and gives a
    list of round-trip seconds or ``(count, seconds)`` (see :func:`pool`).
    ``progress`` hears of each scenario as it starts."""
    pooled: dict[str, dict[str, list[Any]]] = {lib: {} for lib in libraries}
    for round_ in range(sizes.rounds):
        for name in names:
            if name not in only:
                continue
            if progress is not None:
                progress(f"round {round_ + 1}/{sizes.rounds}: {name}")
            order = [lib for lib in libraries if name in libraries[lib]]
            if not order:
                continue
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for lib in order:
                outcome = libraries[lib][name](getattr(sizes, name))
                pooled[lib].setdefault(name, []).append(outcome)
    return {lib: {name: pool(outcomes) for name, outcomes in by_name.items()}
            for lib, by_name in pooled.items()}


def report(results: dict[str, dict[str, float]], sizes: argparse.Namespace) -> bool:
    dc, oslo, raw = results["dovecote"], results["oslo"], results["raw"]
    rows = [
        ("casts, 1 thread [msg/s]", "casts_1", "{:,.0f}"),
        (f"casts, {THREADS} threads [msg/s]", "casts_8", "{:,.0f}"),
        (f"call round trip, median of {sizes.call_rtt * sizes.rounds} [ms]", "call_rtt",
         "{:.3f}"),
        (f"calls, {THREADS} threads [calls/s]", "calls_8", "{:,.0f}"),
    ]
    print(f"{'scenario':<42}{'dovecote':>12}{'oslo':>12}{'raw kombu':>12}"
          f"{'dc/oslo':>10}{'dc/raw':>9}")
    for label, key, fmt in rows:
        scale = 1000 if key == "call_rtt" else 1
        cells = [fmt.format(side[key] * scale) if key in side else "-" for side in (dc, oslo, raw)]
        vs_oslo = dc[key] / oslo[key]
        vs_raw = f"{dc[key] / raw[key]:.2f}" if key in raw else "-"
        print(f"{label:<42}{cells[0]:>12}{cells[1]:>12}{cells[2]:>12}"
              f"{vs_oslo:>9.2f}x{vs_raw:>9}")
    goals = [
        ("casts, 1 thread >= 2.5x oslo.messaging", dc["casts_1"] / oslo["casts_1"], 2.5, True),
        (f"casts, {THREADS} threads >= 5x oslo.messaging",
         dc["casts_8"] / oslo["casts_8"], 5.0, True),
        ("call round trip <= 1.3x raw kombu ping-pong",
         dc["call_rtt"] / raw["call_rtt"], 1.3, False),
        (f"calls, {THREADS} threads >= 4x oslo.messaging",
         dc["calls_8"] / oslo["calls_8"], 4.0, True),
    ]
    print()
    all_met = True
    for label, ratio, goal, at_least in goals:
        met = ratio >= goal if at_least else ratio <= goal
        all_met &= met
        print(f"{'met   ' if met else 'MISSED'}  {label:<48} {ratio:6.2f}x")
    return all_met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few seconds)")
    parser.add_argument("--only", choices=["dovecote", "oslo", "raw"],
                        help="one library only, numbers without ratios (for profiling)")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append",
                        help="only this scenario (repeatable; for profiling)")
    parser.add_argument("--event-history", type=int, default=200,
                        help="events each dovecote actor keeps (0: off; default 200)")
    args = parser.parse_args()
    # per round; a full run takes 3 rounds
    if args.quick:
        sizes = argparse.Namespace(rounds=1, warmup=20, casts_1=300, casts_8=600, call_rtt=200,
                                   calls_8=400)
    else:
        sizes = argparse.Namespace(rounds=3, warmup=100, casts_1=1500, casts_8=3000,
                                   call_rtt=400, calls_8=1000)
    only = set(args.scenario or SCENARIOS)
    quiet()
    started = time.monotonic()
    with contextlib.ExitStack() as stacks:
        libraries: dict[str, dict[str, Scenario]] = {}
        makers = (("dovecote", lambda: dovecote_stack(args.event_history)),
                  ("oslo", oslo_stack))
        for name, make in makers:
            if args.only in (None, name):
                stack = stacks.enter_context(make())
                call_round_trips(stack, sizes.warmup)  # connections, queues, pools, caches
                casts(stack, sizes.warmup, THREADS)
                libraries[name] = scenarios(stack)
        if args.only in (None, "raw"):
            libraries["raw"] = RAW_SCENARIOS
        results = run(libraries, sizes, only)
    elapsed = time.monotonic() - started
    if args.only or only != set(SCENARIOS):
        for lib, numbers in results.items():
            print(lib, {k: round(v, 6) for k, v in numbers.items()})
        print(f"{elapsed:.0f} s")
        return
    print(f"RabbitMQ at {dovecote.TransportURL.parse(URL)}, one run, {sizes.rounds} round(s), "
          f"{elapsed:.0f} s\n")
    report(results, sizes)


if __name__ == "__main__":
    main()
