"""A cap on concurrent calls to 1C, shared by every worker on every machine: a counting semaphore
made of leases.

1C is licence-bound: it serves a few sessions at once and refuses the rest. Each call holds a lease
for its duration. A lease is a member of a Redis sorted set scored by its expiry, so a holder killed
with SIGKILL (no ``finally``, no release) frees its slot when its lease expires instead of leaking
it for ever. A lease lives as long as the call's own HTTP deadline plus a margin: the call is over,
one way or the other, before its lease can expire under it.

The Redis client is injected (the task layer makes it from the broker URL); :class:`LocalSessions`
is the same semaphore within one process (the embedded demo, unit tests).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from integrations.onec.errors import OnecSessionsBusy

if TYPE_CHECKING:
    import redis

# How often a waiting caller tries again (randomised, so waiters do not move in lockstep).
POLL_S = 0.01


@dataclass(frozen=True)
class Lease:
    token: str


class SessionSlots(Protocol):
    cap: int

    def try_acquire(self, ttl_s: float) -> Lease | None:
        """A lease for ``ttl_s`` seconds if fewer than ``cap`` are held, else ``None`` (never waits)."""

    def release(self, lease: Lease) -> None: ...

    def held(self) -> int:
        """Leases held now (expired ones not counted)."""


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
local keep = math.ceil(ttl * 1000) + 1000
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
"""

_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class RedisSessions:
    """Leases in one sorted set per system (``obmen:sessions:<name>``), scored by Redis's own clock."""

    def __init__(self, client: redis.Redis, name: str, cap: int) -> None:
        if cap < 1:
            raise ValueError("a session cap is at least 1")
        self.cap = cap
        self._client = client
        self._key = f"obmen:sessions:{name}"
        self._acquire = client.register_script(_ACQUIRE)
        self._held = client.register_script(_HELD)

    def try_acquire(self, ttl_s: float) -> Lease | None:
        token = uuid.uuid4().hex
        granted = self._acquire(keys=[self._key], args=[self.cap, ttl_s, token])
        return Lease(token) if int(granted) else None

    def release(self, lease: Lease) -> None:
        self._client.zrem(self._key, lease.token)

    def held(self) -> int:
        return int(self._held(keys=[self._key]))


class LocalSessions:
    """The same leases within one process."""

    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        if cap < 1:
            raise ValueError("a session cap is at least 1")
        self.cap = cap
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, float] = {}

    def _expire(self, now: float) -> None:
        for token in [t for t, until in self._leases.items() if until <= now]:
            del self._leases[token]

    def try_acquire(self, ttl_s: float) -> Lease | None:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._leases) >= self.cap:
                return None
            lease = Lease(uuid.uuid4().hex)
            self._leases[lease.token] = now + ttl_s
            return lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.token, None)

    def held(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._leases)


@contextmanager
def hold(
    slots: SessionSlots,
    *,
    ttl_s: float,
    max_wait_s: float,
    retry_after_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Lease]:
    """Hold a lease for the duration of the block, waiting at most ``max_wait_s`` for one.

    When none comes free in time: :class:`OnecSessionsBusy` with ``retry_after_s``, so that the step
    defers itself instead of keeping a worker asleep.
    """
    deadline = time.monotonic() + max_wait_s
    while (lease := slots.try_acquire(ttl_s)) is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise OnecSessionsBusy(
                f"all {slots.cap} 1C sessions are in use; try again in {retry_after_s:g} s",
                retry_after_s=retry_after_s,
            )
        sleep(min(left, POLL_S * (0.5 + random.random())))
    try:
        yield lease
    finally:
        slots.release(lease)
