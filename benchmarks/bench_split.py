"""Where RabbitMQ casts spend their time: the client alone, the server alone,
and both together in one process, with CPU per message and context switches.

* client alone: casts from 1 and 8 threads to a queue no one consumes in this
  process (each cast still waits for its confirm);
* server alone: a server started on the queue those casts filled, draining it;
* together: casts end to end from 1 and 8 threads (as ``bench_rabbit.py``),
  with the context switches per message of each kind of thread (from
  ``/proc/self/task/*/status``).

Run: ``python benchmarks/bench_split.py [--casts N]``. The numbers explain the
RabbitMQ rows of ``report.py``: separately, client and server need far less
CPU per message than together, where every message wakes the listener, the
dispatcher and a worker in turn on one GIL.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import threading
import time
import uuid
from pathlib import Path

import bench_rabbit
from bench_kombu_raw import delete_queues
from bench_rabbit import URL, Sink, dovecote_stack, in_threads, quiet

import dovecote


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def switches() -> collections.Counter[str]:
    """Context switches so far, by kind of thread (its name without the id)."""
    names = {t.native_id: re.sub(r"-[0-9a-f]+$", "", t.name) for t in threading.enumerate()}
    out: collections.Counter[str] = collections.Counter()
    for status in Path("/proc/self/task").glob("*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        kind = names.get(int(status.parent.name), "client threads")
        out[kind] += (int(fields["voluntary_ctxt_switches"])
                      + int(fields["nonvoluntary_ctxt_switches"]))
    return out


def apart(n: int) -> None:
    topic = f"bench_split_{uuid.uuid4().hex[:8]}"
    transport = dovecote.get_transport(URL)
    queues = transport.driver.listen(dovecote.Target(topic=topic, server="s"))  # declares them
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic=topic))
    client.cast({}, "tick", i=-1)
    for threads in (1, 8):
        used, started = cpu(), time.perf_counter()
        in_threads(lambda count: [client.cast({}, "tick", i=i) for i in range(count)], n, threads)
        seconds, used = time.perf_counter() - started, cpu() - used
        print(f"client alone, {threads} thread(s): {n / seconds:8,.0f} casts/s, "
              f"{used / n * 1e6:5.0f} us CPU per cast")
    queues.cleanup()
    sink = Sink()
    done = sink._expect(2 * n + 1)
    server = dovecote.get_rpc_server(transport, dovecote.Target(topic=topic, server="s"), [sink])
    used, started = cpu(), time.perf_counter()
    server.start()
    done.wait(120)
    seconds, used = time.perf_counter() - started, cpu() - used
    print(f"server alone, draining {2 * n + 1}: {(2 * n + 1) / seconds:8,.0f} msg/s, "
          f"{used / (2 * n + 1) * 1e6:5.0f} us CPU per message")
    server.stop()
    server.wait(30)
    delete_queues(URL, topic, f"{topic}.s")
    transport.cleanup()


def together(n: int) -> None:
    with dovecote_stack() as stack:
        bench_rabbit.casts(stack, 200, 8)
        for threads in (1, 8):
            before, used = switches(), cpu()
            count, seconds = bench_rabbit.casts(stack, n, threads)
            used, after = cpu() - used, switches()
            per = {k: (after[k] - before.get(k, 0)) / count for k in after}
            kinds = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda x: -x[1])
                              if v >= 0.1)
            print(f"together, {threads} thread(s): {count / seconds:8,.0f} casts/s, "
                  f"{used / count * 1e6:5.0f} us CPU per cast; context switches per cast "
                  f"{sum(per.values()):.1f} ({kinds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--casts", type=int, default=3000)
    args = parser.parse_args()
    quiet()
    apart(args.casts)
    together(args.casts)


if __name__ == "__main__":
    main()
