"""The worker's timer heap keeps live entries only: a finished task's time-limit timers go at once."""

from __future__ import annotations

from kombu.asynchronous.timer import Timer

from workers.app import app
from workers.timers import CompactTimers, compact, trim_heap


def test_compacting_drops_cancelled_entries_and_keeps_the_rest_in_order() -> None:
    timer = Timer()
    queue = timer._queue
    fired: list[int] = []
    entries = [timer.call_after(0, fired.append, (n,)) for n in range(10)]
    for entry in entries[::2]:
        entry.cancel()  # what the pool does with a task's time-limit timer when the task ends

    assert compact(timer) == 5
    assert timer._queue is queue  # the scheduler iterates over this very list
    assert compact(timer) == 0

    for _delay, due in iter(timer):
        if due is None:
            break
        timer.apply_entry(due)
    assert fired == [1, 3, 5, 7, 9]


def test_every_worker_compacts_its_timer_heap() -> None:
    assert CompactTimers in app.steps["worker"]


def test_trimming_the_heap_is_harmless_where_the_c_library_has_no_malloc_trim() -> None:
    trim_heap()  # glibc here; elsewhere a no-op
