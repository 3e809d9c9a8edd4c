"""dovecote on memory://: call round trip and cast throughput, beside a raw pykka ask,
and the memory a flood costs.

The flood: 100,000 casts to a server whose endpoint is paused until all were sent
(then released until all are handled), measured as the growth of the process's
resident set (``/proc/self/statm``, sampled every few milliseconds) in a fresh
process; beside it, the same casts left in a queue nobody takes from, which is
what the in-process broker itself holds (the floor: on ``memory://`` the broker's
queue lives in the same process). Flow control keeps the server's share to at
most ``max_in_flight`` messages, so the two should be about equal.

Run: python benchmarks/bench_memory.py [--calls 2000] [--casts 100000] [--flood 100000]
Prints absolute numbers and the ratios the project tracks (numbers vary by machine;
ratios measured in one run are what to compare).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import multiprocessing
import resource
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pykka

import dovecote

T = TypeVar("T")


class Echo(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: object) -> object:
        return message


def pykka_ask_samples(n: int) -> list[float]:
    """Seconds of each of ``n`` asks to a pykka actor that echoes."""
    ref = Echo.start()
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        ref.ask(i)
        samples.append(time.perf_counter() - t0)
    ref.stop()
    return samples


def pykka_ask_round_trip(n: int) -> float:
    return statistics.median(pykka_ask_samples(n))


class API:
    def __init__(self, expected: int = 0) -> None:
        self.count = 0
        self.expected = expected
        self.done = threading.Event()

    def ping(self, ctxt: dict, i: int) -> int:
        return i

    def tick(self, ctxt: dict) -> None:
        self.count += 1
        if self.count == self.expected:
            self.done.set()


def serve(transport: dovecote.Transport, api: API, executor: str, history: int = 200) -> Any:
    """An RPC server for ``api`` on topic ``bench``, started (a blocking one in
    a thread of its own); its actors keep ``history`` events each."""
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic="bench"), [api],
                                     executor=executor, event_history=history)
    if executor == "blocking":
        threading.Thread(target=server.start, daemon=True).start()
        server.wait_ready(10)
    else:
        server.start()
    return server


def call_samples(n: int, executor: str, *, history: int = 200, name: str = "") -> list[float]:
    """Seconds of each of ``n`` calls (after 200 off the clock)."""
    transport = dovecote.get_transport(f"memory://bench-call-{executor}{name}")
    server = serve(transport, API(), executor, history)
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="bench"), timeout=10)
    for i in range(200):
        client.call({}, "ping", i=i)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        client.call({}, "ping", i=i)
        samples.append(time.perf_counter() - t0)
    server.stop()
    server.wait()
    transport.cleanup()
    return samples


def call_round_trip(n: int, executor: str, *, history: int = 200, name: str = "") -> float:
    """Median seconds of one call."""
    return statistics.median(call_samples(n, executor, history=history, name=name))


def timed_casts(n: int, executor: str, *, history: int = 200, name: str = "") -> tuple[int, float]:
    """``(n, seconds)`` from the first of ``n`` casts until all were handled."""
    transport = dovecote.get_transport(f"memory://bench-cast-{executor}{name}")
    api = API(expected=n)
    server = serve(transport, api, executor, history)
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic="bench"))
    t0 = time.perf_counter()
    for _ in range(n):
        client.cast({}, "tick")
    if not api.done.wait(120):
        msg = f"only {api.count} of {n} casts arrived"
        raise RuntimeError(msg)
    elapsed = time.perf_counter() - t0
    server.stop()
    server.wait()
    transport.cleanup()
    return n, elapsed


def cast_throughput(n: int, executor: str, *, history: int = 200, name: str = "") -> float:
    """Casts per second, sent and handled."""
    count, seconds = timed_casts(n, executor, history=history, name=name)
    return count / seconds


# -- memory under a flood ----------------------------------------------------------------
FLOOD = 100_000
#: as the flood test (tests/actors/test_server_runtime.py): 4 workers, at most 100 in flight
FLOOD_WORKERS, FLOOD_MAX_IN_FLIGHT = 4, 100


def rss() -> int:
    """This process's resident set, in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


class PeakRss:
    """Samples :func:`rss` in a thread from ``__enter__`` to ``__exit__``;
    ``growth`` is then the peak over the resident set at ``__enter__``."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.growth = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start = self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss())

    def __enter__(self) -> PeakRss:
        gc.collect()
        self._start = self._peak = rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.growth = max(self._peak, rss()) - self._start


class Gate:
    """An endpoint whose ``take`` waits until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.count = 0
        self.expected = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def expect(self, n: int) -> None:
        with self._lock:
            self.count, self.expected = 0, n
            self.done.clear()

    def take(self, ctxt: dict, i: int) -> None:
        self.release.wait(120)
        with self._lock:
            self.count += 1
            if self.count == self.expected:
                self.done.set()


def flood_rss_growth(n: int = FLOOD, *, server: bool = True,
                     max_in_flight: int = FLOOD_MAX_IN_FLIGHT) -> int:
    """Peak growth of the resident set, in bytes, while ``n`` casts flood a
    ``memory://`` topic. With ``server``: an RPC server (4 workers, at most
    ``max_in_flight`` messages taken and unfinished) whose endpoint is paused
    until every cast was sent, then released until all were handled. Without: a
    listener declares the queue and never takes from it, so the casts stay in
    the broker (what the in-process broker itself costs). 1,000 casts off the
    clock first. Meaningful in a fresh process only (:func:`flood_in_process`):
    one that freed memory before reuses it and shows no growth."""
    transport = dovecote.get_transport(f"memory://flood-{uuid.uuid4().hex[:8]}")
    target = dovecote.Target(topic="flood")
    client = dovecote.get_rpc_client(transport, target)
    gate = Gate()
    try:
        if server:
            rpc_server = dovecote.get_rpc_server(
                transport, target, [gate], max_workers=FLOOD_WORKERS,
                max_in_flight=max_in_flight)
            rpc_server.start()
            gate.release.set()
        else:
            listener = transport.driver.listen(target)
        for warm_up in (True, False):
            count = 1000 if warm_up else n
            gate.expect(count)
            with PeakRss() as peak:
                for i in range(count):
                    client.cast({}, "take", i=i)
                gate.release.set()
                if server and not gate.done.wait(120):
                    raise RuntimeError(f"only {gate.count} of {count} casts were handled")
            if server:
                gate.release.clear()
            else:
                while transport.driver.broker.queue_depth("flood"):
                    listener.poll(0.1, 1000)
        if server:
            rpc_server.stop()
            rpc_server.wait()
    finally:
        gate.release.set()
        transport.cleanup()
    return peak.growth


def in_fresh_process(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in a fresh (spawned) process: no other
    server's threads in it, and memory no earlier run freed."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(func, *args, **kwargs).result(300)


def flood_in_process(n: int = FLOOD, *, server: bool = True,
                     max_in_flight: int = FLOOD_MAX_IN_FLIGHT) -> int:
    """:func:`flood_rss_growth` in a fresh (spawned) process."""
    return in_fresh_process(flood_rss_growth, n, server=server, max_in_flight=max_in_flight)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--casts", type=int, default=100_000)
    parser.add_argument("--flood", type=int, default=FLOOD, help="flood size (0: skip)")
    args = parser.parse_args()
    ask = pykka_ask_round_trip(args.calls)
    print(f"pykka ask round trip (median of {args.calls}): {ask * 1e6:8.1f} us")
    for executor in ("threading", "blocking"):
        rtt = call_round_trip(args.calls, executor)
        print(f"dovecote call, {executor:9} executor (median of {args.calls}): "
              f"{rtt * 1e6:8.1f} us  = {rtt / ask:4.2f}x pykka ask (goal <= 3x)")
    for executor in ("threading", "blocking"):
        rate = cast_throughput(args.casts, executor)
        print(f"dovecote casts end to end, {executor:9} executor ({args.casts}): "
              f"{rate:10.0f}/s (goal >= 60000/s)")

    if args.flood:
        ours, floor = (flood_in_process(args.flood, server=server) for server in (True, False))
        mib = 1 << 20
        print(f"resident set growth, {args.flood:,} casts flooding a paused server: "
              f"{ours / mib:6.1f} MiB; the same casts waiting in the queue alone: "
              f"{floor / mib:6.1f} MiB")

if __name__ == "__main__":
    main()
