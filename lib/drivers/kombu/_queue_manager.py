"""Stable reply and fanout queue names per host and process (``use_queue_manager``).

oslo.messaging names these queues ``reply_<uuid>`` and ``<topic>_fanout_<uuid>``,
so every restart leaves queues behind (to expire) and declares new ones: at
scale the churn costs the cluster more than the messages. With
``use_queue_manager`` the names become ``<hostname>:<processname>:<n>``, ``n``
counting from 1 in each generation of a service, so a restarted service declares
the very queues its previous run used.

The counter lives where oslo.messaging keeps it, ``/dev/shm/<host>_<process>_qmanager``,
as ``<process group>:<counter>:<start time>``: a service's master and its forked
workers share it (they share the process group), and a new process group, or one
whose leader started at another time (a recycled pid), starts over at 1. Access
is serialised with ``flock`` on the file itself, opened without following a
symbolic link and created readable by its owner only (oslo.messaging locks with
oslo.concurrency instead, so a dovecote and an oslo.messaging process must not
share one ``hostname`` and ``processname``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import tempfile

__all__ = ["QueueManager"]

_SHM = pathlib.Path("/dev/shm")  # noqa: S108 - oslo.messaging's place; opened safely below


def _safe(part: str) -> str:
    """``part`` usable in a file name (a process name may hold a ``/``)."""
    return part.replace("/", "_").replace("\0", "_") or "_"


def _generation() -> tuple[int, int]:
    """This service's generation: its process group, and when the group's
    leader started (clock ticks since boot, field 22 of ``/proc/<pid>/stat``).
    Read at every name, not once: a supervisor may ``setsid()`` after the
    transport was made."""
    group = os.getpgrp() or os.getpid()
    try:
        stat = pathlib.Path(f"/proc/{group}/stat").read_text()
        # the command name (field 2) may hold spaces: count after its ``)``
        start = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        start = 0
    return group, start


class QueueManager:
    """Hands out ``<hostname>:<processname>:<n>``, ``n`` shared by the processes
    of one service generation on this host (see the module docstring)."""

    def __init__(self, hostname: str, processname: str) -> None:
        self.hostname = hostname
        self.processname = processname
        folder = _SHM if _SHM.is_dir() else pathlib.Path(tempfile.gettempdir())
        self.path = folder / f"{_safe(hostname)}_{_safe(processname)}_qmanager"

    def next_name(self) -> str:
        """The next stable name (the first is ``<hostname>:<processname>:1``)."""
        return f"{self.hostname}:{self.processname}:{self._next_counter()}"

    def _next_counter(self) -> int:
        group, start = _generation()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            counter = 0
            with contextlib.suppress(ValueError):
                seen_group, seen_counter, seen_start = file.read(64).strip().split(":")
                if (int(seen_group), int(seen_start)) == (group, start):
                    counter = int(seen_counter)
            counter += 1
            file.seek(0)
            file.truncate()
            file.write(f"{group}:{counter}:{start}")
            return counter
