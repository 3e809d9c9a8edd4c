"""A service on the ``"blocking"`` executor: the RPC server runs in the main
thread and stops cleanly on SIGTERM and on Ctrl+C, answering the calls it had
already taken.

Run it by hand, on the in-process transport, with a demo client that makes a
call, starts a slow one and then sends the process SIGTERM, as a process
manager would:

    python examples/blocking_service.py

Or serve on a broker until you stop it (Ctrl+C, or ``kill -TERM <pid>``); a
demo, it then deletes the queues it made (a real service keeps them, so that
calls sent while it restarts wait for it):

    python examples/blocking_service.py rabbit://guest:guest@127.0.0.1:5672/ jobs
    dovecote call rabbit://guest:guest@127.0.0.1:5672/ jobs work --args '{"job": "j-1"}'

What it shows:

* With ``executor="blocking"``, ``server.start()`` runs the server in the thread
  that called it (here the main thread) and every endpoint method runs there
  too; ``start()`` returns only once the server has stopped.
* SIGTERM: the application installs a handler that calls ``server.stop()``.
  ``stop()`` never blocks and is safe in a signal handler: listeners stop
  taking messages, the messages already taken are finished (calls are
  answered), then ``start()`` returns.
* Ctrl+C (SIGINT): the application installs nothing. dovecote makes the first
  Ctrl+C stop a blocking server started in the main thread gracefully, the same
  way, and then ``start()`` raises ``KeyboardInterrupt`` (a second Ctrl+C would
  give up at once). dovecote logs that as one warning, ``server.interrupted``,
  on stderr.

It prints ``ready: ...`` once its listeners are up, ``working on JOB`` and
``finished JOB`` around each job, and ``stopped by SIGTERM`` (or ``stopped by
Ctrl+C``) once the server has stopped; the exit status is 0 either way.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import dovecote
from dovecote.testing import DeclaredQueues

URL = sys.argv[1] if len(sys.argv) > 1 else "memory://blocking-service"
TOPIC = sys.argv[2] if len(sys.argv) > 2 else "jobs"


class Jobs:
    """The endpoint. With the blocking executor it runs in the main thread."""

    def __init__(self) -> None:
        #: Set while a job runs (the demo client waits on it; nothing else needs it).
        self.busy = threading.Event()

    def work(self, ctxt: dict[str, Any], job: str, seconds: float = 0.0) -> dict[str, str]:
        print(f"working on {job}", flush=True)
        self.busy.set()
        time.sleep(seconds)  # stands for the job's real work
        self.busy.clear()
        print(f"finished {job}", flush=True)
        return {"job": job, "thread": threading.current_thread().name}


def demo_client(transport: dovecote.Transport, jobs: Jobs) -> None:
    """Only on ``memory://`` (nobody else can reach an in-process broker): one
    call, then a slow call that is still running when SIGTERM arrives."""
    client = dovecote.get_rpc_client(transport, dovecote.Target(topic=TOPIC), timeout=10)
    print("client got", client.call({}, "work", job="job-1"), flush=True)
    slow = client.call_async({}, "work", job="job-2", seconds=0.5)
    if jobs.busy.wait(10):  # job-2 is running in the server's (main) thread
        os.kill(os.getpid(), signal.SIGTERM)
    print("client got", slow.get(timeout=10), "(answered although SIGTERM came first)",
          flush=True)


def main() -> None:
    transport = dovecote.get_transport(URL)
    # A demo tidies up: on a broker, the queues it declares that were not there
    # before are deleted once it has stopped. (A real service keeps its queues.)
    declared = DeclaredQueues(transport)
    jobs = Jobs()
    server = dovecote.get_rpc_server(
        transport, dovecote.Target(topic=TOPIC, server="host-1"), [jobs], executor="blocking",
    )
    stopped_by: list[str] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Keep a signal handler short: no locks, no printing. stop() only asks.
        stopped_by.append(signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    # No SIGINT handler: dovecote's own Ctrl+C handling applies (see above).

    def when_ready() -> None:
        # start() blocks this (main) thread, so "ready" is said from another one,
        # once the listeners are up.
        if not server.wait_ready(30):
            return
        print(f"ready: serving {TOPIC!r} on {transport.url} (pid {os.getpid()})", flush=True)
        if URL.startswith("memory:"):
            demo_client(transport, jobs)

    helper = threading.Thread(target=when_ready, name="ready", daemon=True)
    helper.start()
    try:
        server.start()  # runs here until stop(); endpoints run in this thread
    except KeyboardInterrupt:  # the first Ctrl+C stopped the server gracefully
        stopped_by.append("Ctrl+C")
    server.wait(10)
    helper.join(10)
    declared.delete()
    transport.cleanup()
    print(f"stopped by {stopped_by[0] if stopped_by else 'stop()'}", flush=True)


if __name__ == "__main__":
    main()
