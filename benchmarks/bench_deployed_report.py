"""The as-deployed rows (``bench_deployed``): interleaved rounds, pooled results,
ratios against oslo.messaging and raw kombu, and issue 25's goals.

Pooling: rates are total count over total time across rounds; round trips the
median of every sample; context switches and CPU per message the mean of the
rounds. Rounds take the libraries in turn, starting one further each round, so
a busy moment on the machine hits all of them alike.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from bench_deployed import LIBS, scenarios

#: ``{lib: {row: {rate | rtt_ms, switches, cpu_us}}}``
Results = dict[str, dict[str, dict[str, float]]]

#: Messages per scenario run: (full, quick).
SIZES = {
    "drain_rpc": (8000, 1000), "drain_notify": (8000, 1000),
    "casts_1": (3000, 500), "casts_8": (8000, 1000),
    "calls_8": (3000, 400), "call_rtt": (1000, 200),
    "scale_1": (8000, 1000), "scale_2": (8000, 1000), "scale_4": (8000, 1000),
}
ORDER = ("drain_rpc", "drain_notify", "casts_8", "casts_1", "calls_8", "call_rtt",
         "scale_1", "scale_2", "scale_4")

#: Goals: (row, against, at least this ratio); call_rtt: at most.
GOALS = [
    ("drain_rpc", "oslo", 6.0), ("drain_rpc", "raw", 3.0),
    ("drain_notify", "oslo", 6.0), ("drain_notify", "raw", 3.0),
    ("casts_8", "oslo", 5.0), ("calls_8", "oslo", 4.0),
    ("casts_1", "raw", 1.3), ("call_rtt", "raw", 1.1),
]


def run_all(*, quick: bool, rounds: int | None) -> Results:
    """Every row for every library, pooled: ``{lib: {row: {rate|rtt_ms, switches,
    cpu_us}}}``."""
    rounds = rounds or (1 if quick else 3)
    table = {lib: scenarios(lib) for lib in LIBS}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {lib: {} for lib in LIBS}
    for round_ in range(rounds):
        for row in ORDER:
            libs = [lib for lib in LIBS if row in table[lib]]
            libs = libs[round_ % len(libs):] + libs[:round_ % len(libs)]
            for lib in libs:
                print(f"round {round_ + 1}/{rounds} {row} {lib}", file=sys.stderr, flush=True)
                n = SIZES[row][1 if quick else 0]
                raw[lib].setdefault(row, []).append(table[lib][row](n))
    return {lib: {row: pool(outcomes) for row, outcomes in rows.items()}
            for lib, rows in raw.items()}


def pool(outcomes: list[dict[str, Any]]) -> dict[str, float]:
    pooled: dict[str, float] = {}
    if all("seconds" in o for o in outcomes):
        pooled["rate"] = sum(o["count"] for o in outcomes) / sum(o["seconds"] for o in outcomes)
    samples = [s for o in outcomes for s in o.get("samples", [])]
    if samples:
        pooled["rtt_ms"] = statistics.median(samples) * 1e3
    for key in ("switches", "cpu_us"):
        if all(key in o for o in outcomes):
            pooled[key] = statistics.fmean(o[key] for o in outcomes)
    return pooled


LABELS = {
    "drain_rpc": "a fresh server process draining a backlog of casts",
    "drain_notify": "a fresh listener process draining notifications.info",
    "casts_8": "casts end to end, 8 client threads",
    "casts_1": "casts end to end, 1 client thread",
    "calls_8": "calls from 8 threads",
    "call_rtt": "call round trip, median",
    "scale_1": "1 server process draining 8,000 casts",
    "scale_2": "2 server processes competing on one topic",
    "scale_4": "4 server processes competing on one topic",
}


def ratio(results: Results, row: str, other: str) -> float | None:
    ours, theirs = results["dovecote"].get(row, {}), results[other].get(row, {})
    if row == "call_rtt":
        if "rtt_ms" in ours and "rtt_ms" in theirs:
            return ours["rtt_ms"] / theirs["rtt_ms"]
        return None
    if "rate" in ours and "rate" in theirs:
        return ours["rate"] / theirs["rate"]
    return None


def report(results: Results) -> bool:
    """Print the table and the goals; ``True`` if every goal is met."""
    print("\nas deployed: server in its own process, clients in this one (RabbitMQ)\n")
    print(f"| {'row':52} | {'dovecote':>16} | {'oslo.messaging':>16} | {'raw kombu':>16} "
          f"| {'vs oslo':>8} | {'vs raw':>8} |")
    print(f"| {'-' * 52} | {'-' * 16} | {'-' * 16} | {'-' * 16} | {'-' * 8} | {'-' * 8} |")
    for row in ORDER:
        cells = []
        for lib in LIBS:
            got = results[lib].get(row)
            if not got:
                cells.append("")
            elif row == "call_rtt":
                cells.append(f"{got['rtt_ms']:.2f} ms")
            elif "switches" in got:
                cells.append(f"{got['rate']:,.0f}/s ({got['switches']:.1f} cs)")
            else:
                cells.append(f"{got['rate']:,.0f}/s")
        vs = [ratio(results, row, other) for other in ("oslo", "raw")]
        print(f"| {LABELS[row]:52} | {cells[0]:>16} | {cells[1]:>16} | {cells[2]:>16} | "
              + " | ".join(f"{v:>7.2f}x" if v is not None else f"{'':>8}" for v in vs) + " |")
    print("\ncs: the server process's context switches per message (all its threads)")
    met = True
    print("\ngoals:")
    for row, other, goal in GOALS:
        value = ratio(results, row, other)
        if value is None:
            continue
        ok = value <= goal if row == "call_rtt" else value >= goal
        met &= ok
        sign = "<=" if row == "call_rtt" else ">="
        print(f"  {row} vs {other}: {value:.2f}x (goal {sign} {goal}x) {'met' if ok else 'MISSED'}")
    return met


#: The rows the chart shows (rates), and their short names.
CHART_ROWS = {"drain_rpc": "drain casts", "drain_notify": "drain notifications",
              "casts_8": "casts, 8 threads", "casts_1": "casts, 1 thread",
              "calls_8": "calls, 8 threads", "scale_4": "4 servers drain"}
NAMES = {"dovecote": "dovecote", "oslo": "oslo.messaging", "raw": "raw kombu"}


def draw(axes: Any, results: Results) -> None:
    """Grouped bars: each as-deployed rate, one bar per library."""
    rows = list(CHART_ROWS)
    width = 0.8 / len(LIBS)
    for index, lib in enumerate(LIBS):
        values = [results[lib].get(row, {}).get("rate", 0.0) for row in rows]
        axes.bar([i + (index - 1) * width for i in range(len(rows))], values, width,
                 label=NAMES[lib])
    axes.set_xticks(range(len(rows)), [CHART_ROWS[row] for row in rows], rotation=15)
    axes.set_ylabel("messages per second")
    axes.set_title("As deployed: each server in a process of its own,\n"
                   "clients in the benchmark's process (RabbitMQ on loopback)")
    axes.grid(visible=True, axis="y", alpha=0.3)
    axes.legend()
