"""Notifications end to end, dovecote against oslo.messaging, on one RabbitMQ,
in one run, as ratios.

Scenario (the same endpoint on both libraries; notifier and listener in this
process, each library on its own transport and topic): ``n`` ``info``
notifications from 1 and from 8 threads sharing one ``Notifier`` (driver
``messagingv2``), timed from the first publish until the listener's endpoint
has handled them all. Listeners: dovecote's ``get_notification_listener``
(``"threading"`` executor) and oslo.messaging's (``executor="threading"``).
Both notifiers return once RabbitMQ confirmed each publish (dovecote always
uses publisher confirms; oslo.messaging's rabbit driver too for notifications,
``mandatory`` aside).

Goals (issue 12): >= 2.5x oslo.messaging with 1 publishing thread, >= 5x with 8.
Absolute numbers vary from machine to machine; the ratios, measured in one
run on one broker with the libraries taking turns, are what to compare.

Run: ``python benchmarks/bench_notifications.py [--quick]`` (a full run takes
well under two minutes, ``--quick`` a few seconds). ``--only dovecote`` (or
``oslo``) runs one library, for profiling. ``DOVECOTE_BENCH_RABBIT_URL``
overrides the broker (default ``rabbit://guest:guest@127.0.0.1:5672/``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from bench_kombu_raw import delete_queues
from bench_rabbit import oslo_conf
from bench_rabbit import quiet as bench_rabbit_quiet

import dovecote

URL = os.environ.get("DOVECOTE_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
THREADS = 8
WAIT = 100.0  # no measurement may take longer than this


class Counter:
    """The endpoint both libraries serve: counts ``info`` notifications."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._expected = 0
        self._done = threading.Event()

    def expect(self, n: int) -> threading.Event:
        with self._lock:
            self._count, self._expected = 0, n
            self._done.clear()
        return self._done

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        with self._lock:
            self._count += 1
            if self._count == self._expected:
                self._done.set()


class Side:
    """One library's notifier and listener on a topic of its own."""

    def __init__(self, name: str, notifier: Any, counter: Counter) -> None:
        self.name = name
        self.notifier = notifier
        self.counter = counter

    def notifications(self, n: int, threads: int) -> tuple[int, float]:
        """``n`` notifications from ``threads`` threads sharing the notifier;
        ``(n, seconds)`` from the first publish until all were handled."""
        done = self.counter.expect(n)
        errors: list[BaseException] = []
        payload = {"instance_id": "i-1", "state": "active", "flavor": {"vcpus": 2, "ram": 2048}}

        def publish(count: int) -> None:
            try:
                for _ in range(count):
                    self.notifier.info({}, "compute.instance.update", payload)
            except BaseException as exc:
                errors.append(exc)

        shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
        workers = [threading.Thread(target=publish, args=(share,)) for share in shares]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(WAIT)
        if errors:
            raise errors[0]
        if not done.wait(WAIT):
            raise RuntimeError(f"{self.name}: the listener handled too few notifications")
        return n, time.perf_counter() - started


@contextlib.contextmanager
def dovecote_side() -> Iterator[Side]:
    topic = f"bench_dc_{uuid.uuid4().hex[:8]}"
    counter = Counter()
    transport = dovecote.get_notification_transport(URL)
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic=topic)], [counter], executor="threading")
    listener.start()
    try:
        notifier = dovecote.Notifier(transport, publisher_id="bench", driver="messagingv2",
                                     topics=[topic])
        yield Side("dovecote", notifier, counter)
    finally:
        listener.stop()
        listener.wait(30)
        delete_queues(URL, f"{topic}.info")
        transport.cleanup()


@contextlib.contextmanager
def oslo_side() -> Iterator[Side]:
    import oslo_messaging

    topic = f"bench_oslo_{uuid.uuid4().hex[:8]}"
    counter = Counter()
    transport = oslo_messaging.get_notification_transport(oslo_conf(), url=URL)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [counter], executor="threading")
    listener.start()
    try:
        notifier = oslo_messaging.Notifier(transport, publisher_id="bench",
                                           driver="messagingv2", topics=[topic])
        yield Side("oslo.messaging", notifier, counter)
    finally:
        listener.stop()
        listener.wait()
        delete_queues(URL, f"{topic}.info")
        transport.cleanup()


def quiet() -> None:
    """As ``bench_rabbit.quiet``, and stevedore (which oslo.messaging loads
    drivers with) kept to errors too."""
    bench_rabbit_quiet()
    logging.getLogger("stevedore").setLevel(logging.ERROR)


Scenario = Callable[[int], tuple[int, float]]
SCENARIOS = {"notify_1": 1, f"notify_{THREADS}": THREADS}
GOALS = {"notify_1": 2.5, f"notify_{THREADS}": 5.0}


def run(sides: dict[str, Side], sizes: dict[str, int], rounds: int) -> dict[str, dict[str, float]]:
    """Every scenario in ``rounds`` rounds that take the libraries in turn (so a
    busy moment on the machine hits both alike); rate = total count / total time."""
    pooled: dict[str, dict[str, list[tuple[int, float]]]] = {lib: {} for lib in sides}
    for round_ in range(rounds):
        for name, threads in SCENARIOS.items():
            order = list(sides)
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for lib in order:
                outcome = sides[lib].notifications(sizes[name], threads)
                pooled[lib].setdefault(name, []).append(outcome)
    return {
        lib: {name: sum(c for c, _ in runs) / sum(t for _, t in runs)
              for name, runs in by_name.items()}
        for lib, by_name in pooled.items()
    }


def report(results: dict[str, dict[str, float]]) -> bool:
    dc, oslo = results["dovecote"], results["oslo"]
    print(f"{'scenario':<44}{'dovecote':>12}{'oslo':>12}{'dc/oslo':>10}{'goal':>8}")
    all_met = True
    for name, threads in SCENARIOS.items():
        ratio = dc[name] / oslo[name]
        met = ratio >= GOALS[name]
        all_met &= met
        label = f"notifications end to end, {threads} thread{'s' if threads > 1 else ''} [msg/s]"
        print(f"{label:<44}{dc[name]:>12,.0f}{oslo[name]:>12,.0f}{ratio:>9.2f}x"
              f"{GOALS[name]:>7.0f}x  {'met' if met else 'MISSED'}")
    return all_met


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few seconds)")
    parser.add_argument("--only", choices=["dovecote", "oslo"],
                        help="one library only, numbers without ratios (for profiling)")
    args = parser.parse_args()
    if args.quick:
        rounds, warmup, sizes = 1, 50, {"notify_1": 300, f"notify_{THREADS}": 800}
    else:
        rounds, warmup, sizes = 3, 200, {"notify_1": 1000, f"notify_{THREADS}": 3000}
    quiet()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        sides: dict[str, Side] = {}
        for name, make in (("dovecote", dovecote_side), ("oslo", oslo_side)):
            if args.only in (None, name):
                side = stack.enter_context(make())
                side.notifications(warmup, THREADS)  # connections, queues, pools, caches
                sides[name] = side
        results = run(sides, sizes, rounds)
    elapsed = time.monotonic() - started
    if args.only:
        print(args.only, {k: round(v) for k, v in results[args.only].items()},
              f"{elapsed:.0f} s")
        return
    print(f"RabbitMQ at {dovecote.TransportURL.parse(URL)}, one run, {rounds} round(s), "
          f"{elapsed:.0f} s\n")
    report(results)


if __name__ == "__main__":
    main()
