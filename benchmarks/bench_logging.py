"""What logging and the event history cost, on memory:// (no broker noise).

Run: python benchmarks/bench_logging.py [--calls 3000] [--casts 30000] [--rounds 15]

Four set-ups, interleaved round by round so drift hits them alike:

* ``unconfigured``   structlog left alone (what users get): quiet, history on;
* ``warning``        ``configure_logging(level="warning")``, history on;
* ``history off``    unconfigured, ``event_history=0``;
* ``info``           ``configure_logging(level="info")`` to /dev/null, for scale.

Prints the median call round trip, cast throughput and CPU per cast of each, and the ratios
the project tracks: unconfigured vs warning, history on vs off (goal: within 5 %).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import structlog
from bench_memory import call_round_trip, cast_throughput

import dovecote


def _unconfigured() -> None:
    structlog.reset_defaults()


def _level(level: str) -> Callable[[], None]:
    def configure() -> None:
        structlog.reset_defaults()
        dovecote.configure_logging(level=level, path=os.devnull)
    return configure


SETUPS: dict[str, tuple[Callable[[], None], int]] = {
    "unconfigured": (_unconfigured, 200),
    "warning": (_level("warning"), 200),
    "history off": (_unconfigured, 0),
    "info": (_level("info"), 200),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--casts", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rtts: dict[str, list[float]] = {name: [] for name in SETUPS}
    rates: dict[str, list[float]] = {name: [] for name in SETUPS}
    cpus: dict[str, list[float]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, (configure, history) in SETUPS.items():
            configure()
            rtts[name].append(call_round_trip(args.calls, "threading", history=history,
                                              name=f"-{name.replace(' ', '-')}"))
            began = time.process_time()
            rates[name].append(cast_throughput(args.casts, "threading", history=history,
                                               name=f"-{name.replace(' ', '-')}"))
            cpus[name].append((time.process_time() - began) / args.casts)
    structlog.reset_defaults()
    rtt = {name: statistics.median(values) * 1e6 for name, values in rtts.items()}
    rate = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) * 1e6 for name, values in cpus.items()}
    print(f"memory://, median of {args.rounds} interleaved rounds ({args.calls} calls: "
          f"median round trip; {args.casts} casts: end to end, and process CPU per cast)")
    for name in SETUPS:
        print(f"  {name:13}  call {rtt[name]:7.1f} us   casts {rate[name]:9.0f}/s"
              f"   {cpu[name]:5.1f} us CPU/cast")

    def ratio(label: str, a: str, b: str) -> None:
        print(f"{label:38} call x{rtt[a] / rtt[b]:.3f}   casts x{rate[a] / rate[b]:.3f}"
              f"   CPU/cast x{cpu[a] / cpu[b]:.3f}   (goal within 5 %)")

    ratio("unconfigured vs configured at WARNING:", "unconfigured", "warning")
    ratio("history on vs off (unconfigured):", "unconfigured", "history off")


if __name__ == "__main__":
    main()
