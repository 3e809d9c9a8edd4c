"""What the probe hook sites cost with nothing enabled: this checkout against
another one (e.g. the commit before the hooks), on memory://.

Each round runs the call round trip and cast throughput of ``bench_memory.py``
in a fresh process per checkout, alternating which goes first, so drift on the
machine hits both alike; structlog is left unconfigured. The other checkout is
imported from a directory holding a ``dovecote`` package (its ``lib/``, with
``actors`` beside it as ``dovecote/actors``)::

    git worktree add /tmp/base <commit>
    mkdir -p /tmp/basepkg && ln -s /tmp/base/lib /tmp/basepkg/dovecote
    ln -s /tmp/base/actors /tmp/base/lib/actors
    python benchmarks/bench_hooks_off.py --against /tmp/basepkg

Prints the medians per checkout and the ratio this/other (above 1: slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(calls: int, casts: int) -> dict[str, float]:
    """One sample in this process: µs per call round trip and per cast."""
    from bench_memory import call_round_trip, timed_casts

    call = call_round_trip(calls, "threading")
    n, seconds = timed_casts(casts, "threading")
    return {"call_us": call * 1e6, "cast_us": seconds / n * 1e6}


def _sample(pythonpath: str | None, calls: int, casts: int) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, str(HERE)) if p)
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "--one", "--calls", str(calls), "--casts",
         str(casts)], capture_output=True, text=True, env=env, check=True, timeout=600,
        cwd="/")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", help="directory holding the other checkout's package")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--casts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.calls, args.casts)))
        return
    if not args.against:
        parser.error("--against DIR is required (see the module docstring)")
    samples: dict[str, list[dict[str, float]]] = {"this": [], "other": []}
    for n in range(args.rounds):
        order = [("this", None), ("other", args.against)]
        for name, path in order if n % 2 == 0 else reversed(order):
            samples[name].append(_sample(path, args.calls, args.casts))
        print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'':8} {'call us':>9} {'cast us':>9}")
    medians = {name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
               for name, runs in samples.items()}
    for name, values in medians.items():
        print(f"{name:8} {values['call_us']:9.1f} {values['cast_us']:9.2f}")
    print(f"{'ratio':8} {medians['this']['call_us'] / medians['other']['call_us']:9.3f} "
          f"{medians['this']['cast_us'] / medians['other']['cast_us']:9.3f}")


if __name__ == "__main__":
    main()
