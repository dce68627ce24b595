"""Client-side rate limiting: a leaky bucket (GCRA) that mirrors a service's own limit.

A limiter answers :meth:`RateLimiter.reserve` with a :class:`Slot`: either go (after ``wait_s``,
at most the caller's ``max_wait_s``) or come back later. A caller that gives a ``key`` and is told to
come back keeps a reserved slot under that key: when it returns it gets that slot, instead of
queueing again behind everyone who arrived meanwhile. So N deferred calls wake up spread over N
slots, not all at once.

The bucket's state must be shared by every process that calls the service; the task layer injects
a Redis-backed limiter (``tasks/ratelimit.py``). :class:`LocalRateLimiter` is the same algorithm
in one process (the embedded demo, unit tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Slot:
    granted: bool
    # Granted: sleep this long, then send. Not granted: come back in this long.
    wait_s: float


class RateLimiter(Protocol):
    def reserve(self, cost: int = 1, *, max_wait_s: float = 0.0, key: str | None = None) -> Slot: ...

    def saturate(self) -> None:
        """The service said it is over its limit: treat the bucket as full from now."""


@dataclass(frozen=True)
class Bucket:
    """``burst`` requests at once, then ``rate_per_s``: the service's leaky bucket."""

    rate_per_s: float
    burst: int

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def tolerance_s(self) -> float:
        return self.interval_s * self.burst


class LocalRateLimiter:
    """GCRA over one "theoretical arrival time"; thread-safe within one process."""

    def __init__(self, bucket: Bucket, clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = bucket
        self._clock = clock
        self._lock = threading.Lock()
        self._tat = 0.0
        self._reserved: dict[str, float] = {}

    def reserve(self, cost: int = 1, *, max_wait_s: float = 0.0, key: str | None = None) -> Slot:
        with self._lock:
            now = self._clock()
            if key is not None and key in self._reserved:
                slot = self._reserved[key]
                if slot - now > max_wait_s:
                    return Slot(False, slot - now)
                del self._reserved[key]
                return Slot(True, max(0.0, slot - now))
            tat = max(self._tat, now)
            new_tat = tat + self.bucket.interval_s * cost
            wait = max(0.0, new_tat - self.bucket.tolerance_s - now)
            if wait <= max_wait_s:
                self._tat = new_tat
                return Slot(True, wait)
            if key is not None:
                self._tat = new_tat
                self._reserved[key] = now + wait
            return Slot(False, wait)

    def saturate(self) -> None:
        with self._lock:
            self._tat = max(self._tat, self._clock() + self.bucket.tolerance_s)
