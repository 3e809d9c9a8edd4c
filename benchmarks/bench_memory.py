"""dovecote on memory://: call round trip and cast throughput, beside a raw pykka ask.

Run: python benchmarks/bench_memory.py [--calls 2000] [--casts 100000]
Prints absolute numbers and the ratios the project tracks (numbers vary by machine;
ratios measured in one run are what to compare).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import pykka

import dovecote


class Echo(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: object) -> object:
        return message


def pykka_ask_round_trip(n: int) -> float:
    ref = Echo.start()
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        ref.ask(i)
        samples.append(time.perf_counter() - t0)
    ref.stop()
    return statistics.median(samples)


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


def call_round_trip(n: int, executor: str, *, history: int = 200, name: str = "") -> float:
    """Median seconds of one call."""
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
    return statistics.median(samples)


def cast_throughput(n: int, executor: str, *, history: int = 200, name: str = "") -> float:
    """Casts per second, sent and handled."""
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
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--casts", type=int, default=100_000)
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
              f"{rate:10.0f}/s (goal >= 50000/s)")


if __name__ == "__main__":
    main()
