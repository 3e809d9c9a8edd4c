"""The wake-up a py-amqp listener's broker wait watches beside its socket
(``drivers._buffered.Wakeup``): set once until cleared, so a burst of
settlements costs one byte and one wake-up, and never a lost one."""

from __future__ import annotations

import os
import queue
import select
import threading

import pytest

from dovecote.drivers._buffered import Wakeup

pytestmark = pytest.mark.timeout(30)


def readable(wakeup: Wakeup, timeout: float = 0.0) -> bool:
    return bool(select.select([wakeup], [], [], timeout)[0])


def test_a_wakeup_set_many_times_holds_one_byte_until_cleared() -> None:
    wakeup = Wakeup()
    try:
        assert not readable(wakeup)
        for _ in range(100):
            wakeup.set()
        assert readable(wakeup)
        assert os.read(wakeup.fileno(), 4096) == b"!"  # one byte, not a hundred
        wakeup.clear()
        assert not readable(wakeup)
        wakeup.set()
        assert readable(wakeup), "a set after clear must wake the next wait"
    finally:
        wakeup.close()
    wakeup.set()  # closed: nothing to write to, no error


def test_no_wakeup_is_lost_between_a_clear_and_the_waiters_look() -> None:
    """Senders put an item, then set; the waiter waits, clears, then takes what
    is queued. Every item must be taken without the waiter's wait running out
    while one is queued (a lost wake-up would wait out the whole timeout)."""
    wakeup = Wakeup()
    items: queue.SimpleQueue[int] = queue.SimpleQueue()
    senders, each = 4, 2_000

    def send() -> None:
        for i in range(each):
            items.put(i)
            wakeup.set()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    taken = 0
    try:
        while taken < senders * each:
            woken = readable(wakeup, 5.0)
            assert woken, f"lost wake-up: {items.qsize()} queued, {taken} taken"
            wakeup.clear()
            while True:
                try:
                    items.get_nowait()
                except queue.Empty:
                    break
                taken += 1
    finally:
        for thread in threads:
            thread.join(10)
        wakeup.close()
    assert taken == senders * each
