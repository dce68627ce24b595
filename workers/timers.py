"""Keep a busy worker's main process as small as an idle one's: live timers only, freed heap returned.

The prefork pool sets a soft time-limit timer on the event loop's heap for every task it starts
(``OBMEN_TASK_SOFT_TIME_LIMIT_S``, 300 s) and cancels it when the task ends; kombu's timer only
flags a cancelled entry and drops it when its time comes. A busy worker's main process therefore
carries every task of the last five minutes: at 60 tasks/s, 18,000 dead entries, ≈ 20 MB that
looked like memory per pending request in the SEP benchmark (celery/celery#1129, #5200). Every
:data:`COMPACT_EVERY_S` this step rebuilds the heap without them, on the event loop itself (the
only thread that touches the heap).

It then returns the C heap's free pages to the system (glibc's ``malloc_trim``): the main process
decodes every message it receives, and what a burst of them (a relay run publishing a thousand
polls) needed stays in its heap otherwise. Python's own small-object arenas are not the C heap's:
those a few live objects pin stay (docs/sep.md, the benchmark).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import heapq
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from celery.worker.components import Hub

COMPACT_EVERY_S = 10.0


def compact(timer: Any) -> int:
    """Drop the cancelled entries of a kombu timer's heap, in place; returns how many went.

    In place, because the timer's scheduler iterates over this very list object.
    """
    queue: list[Any] = timer._queue
    live = [scheduled for scheduled in queue if not scheduled.entry.canceled]
    dropped = len(queue) - len(live)
    if dropped:
        heapq.heapify(live)
        queue[:] = live
    return dropped


def _malloc_trim() -> Callable[[], None]:
    """glibc's ``malloc_trim(0)``, or nothing where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is None:
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


trim_heap = _malloc_trim()


def compact_and_trim(timer: Any) -> None:
    """What the step does every :data:`COMPACT_EVERY_S`: tens of microseconds on an idle worker."""
    compact(timer)
    trim_heap()


class CompactTimers(bootsteps.StartStopStep):
    """The worker step that compacts the event loop's timer heap every :data:`COMPACT_EVERY_S`."""

    requires = (Hub,)

    def include_if(self, w: Any) -> bool:
        return bool(w.use_eventloop)

    def start(self, w: Any) -> None:
        w.hub.call_repeatedly(COMPACT_EVERY_S, compact_and_trim, w.hub.timer)
