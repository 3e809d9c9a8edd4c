"""What metrics and traces cost per message, on memory:// (no broker noise).

Three workloads, each with observability off and on:

* ``call``          the median round trip of sequential RPC calls;
* ``cast``          casts end to end (sent until all were handled), per cast;
* ``notification``  ``info`` notifications end to end, per notification;

and these set-ups, interleaved round by round so drift on the machine hits them
alike (structlog left unconfigured, as users get it):

* ``off``             no probe registered: every hook site is one falsy test;
* ``metrics``         ``dovecote.metrics.enable()`` on a registry of its own;
* ``tracing, no SDK`` ``dovecote.tracing.enable()`` and no tracer provider
  configured (the OpenTelemetry API's default): the probe runs and makes no span;
* ``tracing, SDK``    ``dovecote.tracing.enable(tracer_provider=...)`` with the
  OpenTelemetry SDK sampling everything into a ``BatchSpanProcessor`` whose
  exporter drops the spans (what a traced service pays, minus the export);
* ``metrics + SDK``   both;
* ``off 2``           the first set-up again: how far two runs of one set-up drift
  apart here (the noise floor the overheads are read against).

Prints, per workload and set-up, microseconds per message (wall clock; for
casts and notifications also the process's CPU per message) and the overhead
over ``off``. Tracing set-ups are skipped when ``dovecote.tracing`` or the
OpenTelemetry SDK is not installed (``pip install -e '.[metrics,otel]'
opentelemetry-sdk``).

Run: python benchmarks/bench_observability.py [--calls 2000] [--casts 20000]
     [--notifications 20000] [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import prometheus_client
import structlog
from bench_memory import call_round_trip, timed_casts

import dovecote
import dovecote.metrics

try:
    import dovecote.tracing as tracing
except ImportError:  # dovecote.tracing or opentelemetry-api missing: metrics only
    tracing = None  # type: ignore[assignment]

try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
except ImportError:
    TracerProvider = None  # type: ignore[assignment,misc]


def sdk_provider() -> Any:
    """An SDK tracer provider that samples every span and exports none."""

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider


# -- set-ups: (switch on, switch off) ----------------------------------------------------------
def _nothing() -> None:
    return None


def _metrics_on() -> None:
    dovecote.metrics.enable(prometheus_client.CollectorRegistry())


def _tracing_on(provider: Any) -> Callable[[], None]:
    def on() -> None:
        assert tracing is not None
        tracing.enable(tracer_provider=provider)
    return on


def _both_on(provider: Any) -> Callable[[], None]:
    def on() -> None:
        _metrics_on()
        _tracing_on(provider)()
    return on


def _all_off() -> None:
    dovecote.metrics.disable()
    if tracing is not None:
        tracing.disable()


def setups() -> dict[str, Callable[[], None]]:
    """The set-ups this installation can run, by name: each switches its probes on."""
    found: dict[str, Callable[[], None]] = {"off": _nothing, "metrics": _metrics_on}
    if tracing is None:
        # TRACING NOT MEASURED: dovecote.tracing (or opentelemetry-api) is missing.
        print("note: dovecote.tracing is not importable: tracing set-ups skipped")
    else:
        found["tracing, no SDK"] = _tracing_on(None)
        if TracerProvider is None:
            print("note: opentelemetry-sdk is not installed: SDK set-ups skipped")
        else:
            provider = sdk_provider()
            found["tracing, SDK"] = _tracing_on(provider)
            found["metrics + SDK"] = _both_on(provider)
    found["off 2"] = _nothing
    return found


# -- notifications end to end ------------------------------------------------------------------
class Counter:
    """A notification endpoint that sets ``done`` at the ``expected``-th one."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.done = threading.Event()

    def info(self, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any,
             metadata: Any) -> None:
        self.count += 1  # one worker: no lock needed
        if self.count == self.expected:
            self.done.set()


def timed_notifications(n: int, name: str) -> float:
    """Seconds from the first of ``n`` notifications until all were handled
    (200 off the clock first). One worker, as ordered delivery needs."""
    transport = dovecote.get_transport(f"memory://bench-notify{name}")
    counter = Counter()
    listener = dovecote.get_notification_listener(
        transport, [dovecote.Target(topic="bench")], [counter], max_workers=1)
    listener.start()
    notifier = dovecote.Notifier(transport, publisher_id="bench", topics=["bench"])
    try:
        for count in (200, n):
            counter.count, counter.expected = 0, count
            counter.done.clear()
            began = time.perf_counter()
            for i in range(count):
                notifier.info({}, "bench.tick", i)
            if not counter.done.wait(120):
                raise RuntimeError(f"only {counter.count} of {count} notifications arrived")
            elapsed = time.perf_counter() - began
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    return elapsed


# -- one round -----------------------------------------------------------------------------------
def measure(name: str, args: argparse.Namespace) -> dict[str, tuple[float, float | None]]:
    """Per workload: (wall µs per message, CPU µs per message or None)."""
    tag = "-" + name.replace(" ", "").replace(",", "").replace("+", "")
    out: dict[str, tuple[float, float | None]] = {}
    out["call"] = (call_round_trip(args.calls, "threading", name=tag) * 1e6, None)
    began = time.process_time()
    count, seconds = timed_casts(args.casts, "threading", name=tag)
    out["cast"] = (seconds / count * 1e6, (time.process_time() - began) / count * 1e6)
    began = time.process_time()
    seconds = timed_notifications(args.notifications, tag)
    out["notification"] = (seconds / args.notifications * 1e6,
                           (time.process_time() - began) / args.notifications * 1e6)
    return out


WORKLOADS = ("call", "cast", "notification")


def report(results: dict[str, list[dict[str, tuple[float, float | None]]]],
           rounds: int) -> None:
    def median(name: str, workload: str, which: int) -> float | None:
        values = [r[workload][which] for r in results[name]]
        return None if values[0] is None else statistics.median(v or 0.0 for v in values)

    def pct(value: float | None, base: float | None) -> str:
        if value is None or base is None:
            return ""
        return f"{(value / base - 1) * 100:+6.1f} %"

    print(f"\nmemory://, median of {rounds} interleaved rounds; structlog unconfigured. "
          "us/msg: wall clock per message (call: median round trip); "
          "CPU: process CPU per message")
    header = f"{'set-up':16}"
    for workload in WORKLOADS:
        header += f" | {workload + ' us/msg':>18} {'overhead':>9}"
        if workload != "call":
            header += f" {'CPU us':>7} {'overhead':>9}"
    print(header)
    print("-" * len(header))
    for name in results:
        line = f"{name:16}"
        for workload in WORKLOADS:
            wall, base = median(name, workload, 0), median("off", workload, 0)
            line += f" | {wall or 0.0:18.1f} {pct(wall, base):>9}"
            if workload != "call":
                cpu, cpu_base = median(name, workload, 1), median("off", workload, 1)
                line += f" {cpu or 0.0:7.1f} {pct(cpu, cpu_base):>9}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--casts", type=int, default=20_000)
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.casts, args.notifications, args.rounds = 300, 2000, 2000, 2
    structlog.reset_defaults()  # unconfigured, as users get it
    chosen = setups()
    results: dict[str, list[dict[str, tuple[float, float | None]]]] = {n: [] for n in chosen}
    for round_no in range(args.rounds):
        for name, switch_on in chosen.items():
            switch_on()
            try:
                results[name].append(measure(name, args))
            finally:
                _all_off()
        print(f"round {round_no + 1}/{args.rounds} done", flush=True)
    report(results, args.rounds)


if __name__ == "__main__":
    main()
