"""What logging and the event history cost, on memory:// (no broker noise).

Run: python benchmarks/bench_logging.py [--calls 3000] [--casts 30000] [--rounds 15]

Four set-ups, interleaved round by round so drift hits them alike:

* ``unconfigured``   structlog left alone (what users get): quiet, history on;
* ``warning``        ``configure_logging(level="warning")``, history on;
* ``history off``    unconfigured, ``event_history=0``;
* ``info``           ``configure_logging(level="info")`` to /dev/null, for scale;
* ``unconfigured 2`` the first set-up again: how far two runs of one set-up drift apart
  here (the noise floor the 5 % goals are read against).

Prints the median call round trip, cast throughput and CPU per cast of each, and the ratios
the project tracks: unconfigured vs warning, history on vs off (goal: within 5 %). Then,
since two runs of one set-up differ by a few per cent here, the history's own cost without
that noise: the events one cast makes, recorded in a loop, against the CPU a cast takes.
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
from dovecote.observe._logging import ActorLog, History, get_logger
from dovecote.rpc._server import _OK, _STARTED


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
    "unconfigured 2": (_unconfigured, 200),
}


def recording_cost(n: int = 200_000) -> float:
    """CPU seconds the history takes for one cast: the four events a cast records
    (listener, dispatcher, worker start and end), as the dispatch path records them."""
    log = ActorLog(get_logger("bench"), History(200, {}))
    began = time.process_time()
    for _ in range(n):
        ids = ["0b4f7c1e-5d2a-4a8e-9f00-3c1d2e4f5a6b"]
        log.debug_fields("message.received", {"count": 1, "msg_ids": ids})
        log.debug_fields("message.queued", {"count": 1, "msg_ids": ids})
        log.debug_values("dispatch.started", _STARTED, (ids[0], "tick"))
        log.debug_values("dispatch.ok", _OK, (ids[0], "tick", 0.012, "ok"))
    return (time.process_time() - began) / n


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
        print(f"  {name:14}  call {rtt[name]:7.1f} us   casts {rate[name]:9.0f}/s"
              f"   {cpu[name]:5.1f} us CPU/cast")

    def ratio(label: str, a: str, b: str) -> None:
        print(f"{label:38} call x{rtt[a] / rtt[b]:.3f}   casts x{rate[a] / rate[b]:.3f}"
              f"   CPU/cast x{cpu[a] / cpu[b]:.3f}")

    ratio("unconfigured vs configured at WARNING:", "unconfigured", "warning")
    ratio("history on vs off (unconfigured):", "unconfigured", "history off")
    ratio("noise: unconfigured vs itself:", "unconfigured", "unconfigured 2")
    cost = recording_cost() * 1e6
    print(f"history alone: {cost:.2f} us of CPU per cast (4 events) = "
          f"{cost / cpu['unconfigured'] * 100:.1f} % of the CPU a cast takes (goal within 5 %)")


if __name__ == "__main__":
    main()
