"""Every speed goal of dovecote in one run: one table, one JSON file, one chart.

What it measures (clients and servers in this process, as in the tests; each
scenario's functions come from the ``bench_*`` modules beside this file):

1. RabbitMQ casts end to end with 1 client thread (``bench_rabbit.casts``):
   dovecote, oslo.messaging (threading executor), raw kombu with publisher
   confirms and an acknowledging consumer, and the floor under any confirmed
   cast: py-amqp alone publishing persistent 100-byte bodies one at a time,
   each waiting for its confirm, to a queue nothing here consumes
   (``bench_kombu_raw.raw_publish_confirmed``);
2. the same casts from 2, 4 and 8 client threads (8 has a goal; all four make
   the chart);
3. calls from 8 threads sharing one client;
4. the sequential call round trip (median) against a raw kombu ping-pong;
5. notifications end to end from 1 and 8 publishing threads
   (``bench_notifications``);
6. ``memory://`` casts end to end and call round trips, with the
   ``"threading"`` and the ``"blocking"`` executor, against a pykka ``ask``
   (``bench_memory``), each in a fresh process (no RabbitMQ stack's idle
   threads taking turns on its GIL), and each measured twice in every round
   (``A/A``): how far the two differ is this machine's noise on these rows,
   which depend on how the OS schedules three threads on two cores;
7. ``amqp1://`` call round trip and casts against raw python-qpid-proton
   (``bench_amqp1``);
8. the resident set's growth while 100,000 casts flood a ``memory://`` server
   whose endpoint is paused, in a fresh process, against the same casts left
   in the in-process broker's queue (``bench_memory.flood_rss_growth``).

Every scenario runs in rounds that take the libraries in turn
(``bench_rabbit.run``), so a busy moment on the machine hits all of them alike;
rates are total count over total time, round trips the median of every
sample. Absolute numbers vary from machine to machine (by +-30 % from run to
run on a shared 2-core VM); the ratios of one run are what to compare.

Run: ``python benchmarks/report.py [--quick] [--json PATH] [--chart PATH]``
(about 35 s with ``--quick``, a smoke check; about 3.5 minutes without,
10 at most). It prints the table, writes it as JSON (default
``benchmarks/results/report.json``) and draws casts per second against client
threads for dovecote, oslo.messaging and raw kombu (default
``benchmarks/results/throughput.png``; needs matplotlib:
``python -m pip install -e '.[bench]'``). ``DOVECOTE_BENCH_RABBIT_URL``
overrides the RabbitMQ broker (default ``rabbit://guest:guest@127.0.0.1:5672/``);
``amqp1://`` goes to the AMQP 1.0 plugin of the same broker on 127.0.0.1:5672.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import bench_amqp1
import bench_deployed_report
import bench_kombu_raw
import bench_memory
import bench_notifications
import bench_rabbit
from bench_rabbit import Scenario, Stack

import dovecote

HERE = Path(__file__).resolve().parent
RABBIT_URL = bench_rabbit.URL
AMQP1_URL = bench_amqp1.URL
THREADS = (1, 2, 4, 8)
MIB = 1 << 20
#: the flood may grow the process by at most this much beyond the queue alone:
#: see FLOOD_BOUND_WHY
FLOOD_SLACK_MIB = 2.0
FLOOD_BOUND_WHY = (
    "tests/actors/test_server_runtime.py's flood test (100,000 casts on memory://) calls it flat "
    "when the server holds at most max_in_flight (100) taken and unfinished and its "
    "mailboxes at most max_in_flight + 2 per actor, the rest waiting in the broker's "
    "queue. On memory:// that queue lives in this process, so the bound is the queue's "
    "own growth, measured alone in the same run, plus 2 MiB: room for ~200 held messages "
    "at the ~1.7 KiB each costs once taken (100,000 let in at once grow the process by "
    "~160 MiB) with the rest for allocator and sampling noise."
)
# Libraries, the columns of bench_rabbit.run. AGAIN is dovecote's memory:// rows
# measured a second time in each round, right after the first: the A/A pair
# that shows how far two runs of the same code differ on this machine.
DOVECOTE, OSLO, KOMBU, PYAMQP, PYKKA, PROTON, AGAIN = (
    "dovecote", "oslo.messaging", "raw kombu", "raw py-amqp", "pykka", "raw proton",
    "dovecote, again")
#: scenario order within a round; related ones run next to each other
NAMES = ("casts_1", "publish_1", "notify_1", "casts_2", "casts_4", "casts_8", "notify_8",
         "call_rtt", "calls_8", "amqp1_rtt", "amqp1_casts", "mem_casts_threading",
         "mem_casts_blocking", "mem_rtt_threading", "pykka_rtt", "mem_rtt_blocking")
#: how many of each per round
QUICK = {"rounds": 1, "warmup": 50, "casts_1": 600, "publish_1": 600, "notify_1": 600,
         "casts_2": 800, "casts_4": 1200, "casts_8": 1200, "notify_8": 1600, "call_rtt": 300,
         "calls_8": 800, "amqp1_rtt": 150, "amqp1_casts": 400, "mem_casts_threading": 20_000,
         "mem_casts_blocking": 20_000, "mem_rtt_threading": 1000, "pykka_rtt": 2000,
         "mem_rtt_blocking": 1000}
FULL = {"rounds": 4, "warmup": 200, "casts_1": 3000, "publish_1": 3000, "notify_1": 2000,
        "casts_2": 4000, "casts_4": 6000, "casts_8": 6000, "notify_8": 6000, "call_rtt": 500,
        "calls_8": 2000, "amqp1_rtt": 300, "amqp1_casts": 1000, "mem_casts_threading": 50_000,
        "mem_casts_blocking": 50_000, "mem_rtt_threading": 2000, "pykka_rtt": 4000,
        "mem_rtt_blocking": 2000}


# -- the scenarios --------------------------------------------------------------------------
def rate(measure: Callable[[int], float], n: int) -> tuple[int, float]:
    """``(n, seconds)`` from a function that gives ``n`` things' rate per second."""
    return n, n / measure(n)


def stack_scenarios(stack: Stack, threads: tuple[int, ...]) -> dict[str, Scenario]:
    """bench_rabbit's scenarios on ``stack``, with casts from each of ``threads``."""
    scenarios = bench_rabbit.scenarios(stack)
    for count in threads:
        scenarios[f"casts_{count}"] = functools.partial(bench_rabbit.casts, stack,
                                                        threads=count)
    return scenarios


def notification_scenarios(side: bench_notifications.Side) -> dict[str, Scenario]:
    return {"notify_1": functools.partial(side.notifications, threads=1),
            "notify_8": functools.partial(side.notifications, threads=8)}


def memory_scenarios() -> dict[str, Scenario]:
    """dovecote on memory://, a fresh broker and server each time, each in a
    fresh process: the RabbitMQ stacks' idle threads (polls, heartbeats) in
    this one would take turns on its GIL too."""
    scenarios: dict[str, Scenario] = {}
    fresh = bench_memory.in_fresh_process
    for executor in ("threading", "blocking"):
        scenarios[f"mem_casts_{executor}"] = functools.partial(
            fresh, bench_memory.timed_casts, executor=executor)
        scenarios[f"mem_rtt_{executor}"] = functools.partial(
            fresh, bench_memory.call_samples, executor=executor)
    return scenarios


def raw_kombu_scenarios() -> dict[str, Scenario]:
    scenarios = dict(bench_rabbit.RAW_SCENARIOS)
    for count in THREADS:
        scenarios[f"casts_{count}"] = functools.partial(bench_rabbit.raw_casts, threads=count)
    return scenarios


@contextlib.contextmanager
def libraries(warmup: int) -> Iterator[dict[str, dict[str, Scenario]]]:
    """Every library's scenarios, its clients and servers started and warmed up
    (connections, queues, pools, caches); stopped afterwards."""
    with contextlib.ExitStack() as stacks:
        ours = stacks.enter_context(bench_rabbit.dovecote_stack())
        theirs = stacks.enter_context(bench_rabbit.oslo_stack())
        ours_amqp1 = stacks.enter_context(bench_rabbit.dovecote_stack(url=AMQP1_URL))
        ours_notify = stacks.enter_context(bench_notifications.dovecote_side())
        theirs_notify = stacks.enter_context(bench_notifications.oslo_side())
        for stack in (ours, theirs, ours_amqp1):
            bench_rabbit.call_round_trips(stack, warmup)
            bench_rabbit.casts(stack, warmup, bench_rabbit.THREADS)
        for side in (ours_notify, theirs_notify):
            side.notifications(warmup, bench_notifications.THREADS)
        amqp1 = stack_scenarios(ours_amqp1, (1,))
        yield {
            DOVECOTE: {
                **stack_scenarios(ours, THREADS), **notification_scenarios(ours_notify),
                "amqp1_rtt": amqp1["call_rtt"], "amqp1_casts": amqp1["casts_1"],
                **memory_scenarios(),
            },
            OSLO: {**stack_scenarios(theirs, THREADS), **notification_scenarios(theirs_notify)},
            KOMBU: raw_kombu_scenarios(),
            PYAMQP: {"publish_1": functools.partial(
                rate, functools.partial(bench_kombu_raw.raw_publish_confirmed, url=RABBIT_URL))},
            PYKKA: {"pykka_rtt": functools.partial(bench_memory.in_fresh_process,
                                                   bench_memory.pykka_ask_samples)},
            PROTON: {"amqp1_rtt": bench_amqp1.raw_calls,
                     "amqp1_casts": functools.partial(rate, bench_amqp1.raw_casts)},
            AGAIN: memory_scenarios(),
        }


def measure(sizes: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every scenario in interleaved rounds, then the flood, once each way, in
    fresh processes: rates per second, round trips in seconds, growth in bytes."""
    def progress(text: str) -> None:
        print(f"  {text:<60}", end="\r", file=sys.stderr, flush=True)

    with libraries(sizes.warmup) as libs:
        results = bench_rabbit.run(libs, sizes, set(NAMES), NAMES, progress)
    progress("the flood")
    results[DOVECOTE]["flood_rss"] = bench_memory.flood_in_process(server=True)
    results["queue alone"] = {"flood_rss": bench_memory.flood_in_process(server=False)}
    progress("")
    return results


# -- goals and the table ------------------------------------------------------------------------
@dataclass
class Line:
    """dovecote's number in one scenario, against one baseline and maybe a goal:
    ``goal_of`` (``"ratio"``: dovecote / baseline, ``"value"``: dovecote's number,
    ``"excess"``: dovecote's number - baseline) ``goal_op`` ``goal_value``."""

    group: str
    scenario: str
    unit: str
    dovecote: float
    baseline_name: str = ""
    baseline: float | None = None
    ratio: float | None = None
    goal_of: str = ""
    goal_op: str = ""
    goal_value: float | None = None
    goal: str = ""
    met: bool | None = None

    def judge(self, of: str, op: str, value: float) -> Line:
        """Set the goal and whether it was met; the line."""
        self.goal_of, self.goal_op, self.goal_value = of, op, value
        measured = {"ratio": self.ratio, "value": self.dovecote,
                    "excess": self.dovecote - (self.baseline or 0.0)}[of]
        assert measured is not None
        self.met = measured >= value if op == ">=" else measured <= value
        self.goal = {"ratio": f"{op} {value:.2f}x", "value": f"{op} {value:,.0f} {self.unit}",
                     "excess": f"{op} baseline + {value:g} {self.unit}"}[of]
        return self


UNITS = {"msg/s": 1.0, "calls/s": 1.0, "ms": 1e3, "us": 1e6, "MiB": 1 / MIB}


def lines(results: dict[str, dict[str, float]], sizes: argparse.Namespace) -> list[Line]:
    """The table: every comparison the issue asks for, plus raw kombu beside
    dovecote wherever it ran (no goal), in display units."""
    out: list[Line] = []

    def add(group: str, scenario: str, key: str, unit: str,
            against: list[tuple[str, str, float | None, bool]]) -> None:
        """``against``: (library, key, goal ratio, at least) comparisons."""
        scale = UNITS[unit]
        ours = results[DOVECOTE][key] * scale
        for lib, their_key, goal, at_least in against:
            theirs = results[lib][their_key] * scale
            ratio = ours / theirs
            line = Line(group, scenario, unit, ours, label_of(lib, their_key), theirs, ratio)
            if goal is not None:
                line.judge("ratio", ">=" if at_least else "<=", goal)
            out.append(line)

    def absolute(group: str, scenario: str, key: str, unit: str, at_least: float) -> None:
        ours = results[DOVECOTE][key] * UNITS[unit]
        out.append(Line(group, scenario, unit, ours).judge("value", ">=", at_least))

    add("1", "RabbitMQ casts end to end, 1 client thread", "casts_1", "msg/s",
        [(OSLO, "casts_1", 2.5, True), (KOMBU, "casts_1", None, True),
         (PYAMQP, "publish_1", 0.70, True)])
    for count in (2, 4):
        add("chart", f"RabbitMQ casts end to end, {count} client threads", f"casts_{count}",
            "msg/s", [(OSLO, f"casts_{count}", None, True), (KOMBU, f"casts_{count}", None, True)])
    add("2", "RabbitMQ casts end to end, 8 client threads", "casts_8", "msg/s",
        [(OSLO, "casts_8", 5.0, True), (KOMBU, "casts_8", None, True)])
    add("3", "RabbitMQ calls, 8 threads sharing a client", "calls_8", "calls/s",
        [(OSLO, "calls_8", 4.0, True)])
    samples = sizes.call_rtt * sizes.rounds
    add("4", f"RabbitMQ call round trip, median of {samples:,}", "call_rtt", "ms",
        [(KOMBU, "call_rtt", 1.3, False), (OSLO, "call_rtt", None, False)])
    add("5", "notifications end to end, 1 publishing thread", "notify_1", "msg/s",
        [(OSLO, "notify_1", 2.5, True), (PYAMQP, "publish_1", 0.70, True)])
    add("5", "notifications end to end, 8 publishing threads", "notify_8", "msg/s",
        [(OSLO, "notify_8", 5.0, True)])
    for executor in ("threading", "blocking"):
        absolute("6", f"memory:// casts end to end, {executor!r} executor",
                 f"mem_casts_{executor}", "msg/s", 60_000)
    for executor in ("threading", "blocking"):
        add("6", f"memory:// call round trip, {executor!r} executor", f"mem_rtt_{executor}",
            "us", [(PYKKA, "pykka_rtt", 3.0, False)])
    for key, unit in (("mem_casts_threading", "msg/s"), ("mem_casts_blocking", "msg/s"),
                      ("mem_rtt_threading", "us"), ("mem_rtt_blocking", "us")):
        add("A/A", f"the noise: {key} measured twice, in turn", key, unit,
            [(AGAIN, key, None, True)])
    add("7", "amqp1:// call round trip (median)", "amqp1_rtt", "ms",
        [(PROTON, "amqp1_rtt", 1.2, False)])
    add("7", "amqp1:// casts end to end, 1 client thread", "amqp1_casts", "msg/s",
        [(PROTON, "amqp1_casts", 1.0, True)])
    ours, alone = results[DOVECOTE]["flood_rss"] / MIB, results["queue alone"]["flood_rss"] / MIB
    out.append(Line("8", f"memory:// RSS growth, {bench_memory.FLOOD:,}-cast flood, paused "
                    "server", "MiB", ours, label_of("queue alone", "flood_rss"), alone,
                    ours / alone).judge("excess", "<=", FLOOD_SLACK_MIB))
    return out


def label_of(lib: str, key: str) -> str:
    if key == "publish_1":
        return "raw py-amqp, 1 confirmed at a time"
    if lib == PYKKA:
        return "pykka ask"
    if lib == KOMBU and key == "call_rtt":
        return "raw kombu ping-pong"
    if lib == PROTON:
        return "raw proton request/reply" if key == "amqp1_rtt" else "raw proton confirmed"
    if lib == AGAIN:
        return "dovecote, the same again (A/A)"
    if lib == "queue alone":
        return "the same casts in the queue alone"
    return lib


def cell(value: float, unit: str) -> str:
    if unit in ("msg/s", "calls/s"):
        return f"{value:,.0f}"
    if unit == "us":
        return f"{value:,.1f}"
    if unit == "MiB":
        return f"{value:,.1f}"
    return f"{value:,.3f}"


def print_table(table: list[Line]) -> None:
    print(f"{'#':<6}{'scenario':<62}{'unit':>7}{'dovecote':>10}  {'against':<36}"
          f"{'value':>9}{'ratio':>8}  {'goal':<24}result")
    previous = None
    for line in table:
        first = (line.group, line.scenario) != previous
        previous = (line.group, line.scenario)
        head = (f"{line.group:<6}{line.scenario:<62}{line.unit:>7}"
                f"{cell(line.dovecote, line.unit):>10}" if first else " " * 85)
        theirs = "" if line.baseline is None else cell(line.baseline, line.unit)
        ratio = "" if line.ratio is None else f"{line.ratio:.2f}x"
        result = {None: "", True: "met", False: "MISSED"}[line.met]
        print(f"{head}  {line.baseline_name:<36}{theirs:>9}{ratio:>8}  {line.goal:<24}{result}"
              .rstrip())


# -- the chart ------------------------------------------------------------------------------------
def chart(results: dict[str, dict[str, float]], path: Path,
          deployed: bench_deployed_report.Results | None = None) -> bool:
    """Casts per second against client threads, one line per library (same
    process), and beside it the as-deployed rates (``deployed``); False (and one
    line said) when matplotlib is missing."""
    try:
        import matplotlib as mpl
    except ImportError:
        print("no chart: matplotlib is missing (python -m pip install -e '.[bench]', "
              "or python -m pip install matplotlib)")
        return False
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    if deployed is None:
        figure, axes = plt.subplots(figsize=(10, 6), dpi=100)
    else:
        figure, (axes, right) = plt.subplots(1, 2, figsize=(18, 6), dpi=100)
        bench_deployed_report.draw(right, deployed)
    for lib, marker in ((DOVECOTE, "o"), (OSLO, "s"), (KOMBU, "^")):
        axes.plot(THREADS, [results[lib][f"casts_{t}"] for t in THREADS], marker=marker,
                  linewidth=2, markersize=7, label=lib)
    axes.set_title("Casts end to end (publish confirmed -> endpoint handled), RabbitMQ on "
                   "loopback,\nclient and server in the same process")
    axes.set_xlabel("client threads")
    axes.set_ylabel("casts per second")
    axes.set_xticks(THREADS)
    axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(mpl.ticker.StrMethodFormatter("{x:,.0f}"))
    axes.grid(visible=True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return True


# -- the run --------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("dovecote", "oslo.messaging", "kombu", "amqp", "python-qpid-proton",
                    "pykka"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    with contextlib.suppress(Exception):
        conn = bench_kombu_raw.amqp_connection(RABBIT_URL)
        version = conn.server_properties.get("version", b"?")
        conn.close()
        found["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smaller run, one round (about a minute): a smoke check")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "report.json",
                        help="where to write the table as JSON (default: %(default)s)")
    parser.add_argument("--chart", type=Path, default=HERE / "results" / "throughput.png",
                        help="where to draw the casts chart (default: %(default)s)")
    parser.add_argument("--cpus", type=lambda text: {int(c) for c in text.split(",")},
                        help="pin this process (and the processes it starts) to these CPUs, "
                             "e.g. 0: every library alike, the broker keeps the others")
    parser.add_argument("--same-process-only", action="store_true",
                        help="leave out the as-deployed rows (bench_deployed: servers in "
                             "processes of their own)")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, args.cpus)
    sizes = argparse.Namespace(**(QUICK if args.quick else FULL))
    bench_rabbit.quiet()
    found = versions()
    brokers = {"rabbit": str(dovecote.TransportURL.parse(RABBIT_URL)),
               "amqp1": str(dovecote.TransportURL.parse(AMQP1_URL))}
    print(f"RabbitMQ {found.get('rabbitmq', '?')} at {brokers['rabbit']} and "
          f"{brokers['amqp1']}; {'quick' if args.quick else 'full'} run, "
          f"{sizes.rounds} round(s), {os.cpu_count()} CPUs"
          + (f", this process pinned to CPU(s) {sorted(args.cpus)}" if args.cpus else ""))
    print("  ".join(f"{name} {version}" for name, version in found.items()))
    started = time.monotonic()
    results = measure(sizes)
    deployed = None if args.same_process_only else bench_deployed_report.run_all(
        quick=args.quick, rounds=sizes.rounds)
    elapsed = time.monotonic() - started
    table = lines(results, sizes)
    print("\nsame process: clients and servers in this process, as the tests run them\n")
    print_table(table)
    if deployed is not None:
        bench_deployed_report.report(deployed)
    goals = [line for line in table if line.met is not None]
    met = sum(1 for line in goals if line.met)
    print(f"\n{met} of {len(goals)} goals met; wall time {elapsed:.0f} s")
    print(f"flood bound: {FLOOD_BOUND_WHY}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick, "wall_time_s": round(elapsed, 1), "brokers": brokers,
        "versions": found,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "pinned_to": sorted(args.cpus) if args.cpus else None},
        "sizes": vars(sizes),
        "units": {"rates": "per second", "round trips": "seconds", "flood_rss": "bytes"},
        "results": results,
        "deployed": deployed,
        "flood_bound": FLOOD_BOUND_WHY,
        "table": [asdict(line) for line in table],
        "goals_met": met, "goals": len(goals), "all_met": met == len(goals),
    }, indent=2) + "\n")
    print(f"JSON: {args.json}")
    if chart(results, args.chart, deployed):
        print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
