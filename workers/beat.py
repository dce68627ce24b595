"""The one beat: redbeat's schedule in Redis, sent only under a lease it renews on every tick.

redbeat takes its lock once, at start, and ends the process on the first Redis error of a tick: a
FLUSHALL (the lock is gone: ``LockNotOwnedError``), a restart (``ConnectionError``) or an outage
ends beat, and with it the relay, the sweeper, the canaries and every deadline. This scheduler
rides such interruptions out instead:

* **The lease** (``obmen:redbeat:lock``, ``OBMEN_BEAT_LEASE_S``) is taken without blocking and
  renewed at every tick. A beat that cannot renew it — Redis away, the key flushed, expired and
  taken by another beat — sends nothing; it tries again every tick, and whichever beat takes the
  lease next leads. Due jobs are sent only within half a lease of the last renewal, so two beats
  never send at once even if a tick stalls.
* **The schedule** is written to Redis again whenever this beat takes the lease (a FLUSHALL or a
  restart without data took redbeat's entries with it); entries still there keep their last run.
* **Any error of a tick** is logged and retried after a short pause, never fatal: the broker
  outage that stops beat is the one beat must outlast. Jobs missed meanwhile run once when it is
  back (they are idempotent, and the registers hold what they work on).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import LockError
from redis.lock import Lock

log = structlog.get_logger(__name__)

RETRY_MIN_S = 0.5


class LeasedScheduler(RedBeatScheduler):
    lock_key: str | None
    lease_key: str = ""
    lease: Lock | None = None
    leading = False
    renewed_at = 0.0
    installed = False
    failures = 0

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # redbeat's own lock (blocking at start, fatal when lost) stays off: the lease replaces it.
        self.lease_key, self.lock_key = str(self.lock_key), None

    def setup_schedule(self) -> None:
        """Write the static schedule to Redis; with Redis away, the first tick that leads does it."""
        try:
            super().setup_schedule()
            self.installed = True
        except Exception as exc:
            log.warning("beat.schedule_not_installed", error=f"{type(exc).__name__}: {exc}")
            self.installed = False

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if not self._lead():
                self.failures = 0
                return float(self.max_interval)
            if not self.installed:
                super().setup_schedule()
                self.installed = True
                log.info("beat.schedule_installed")
            interval = float(super().tick(*args, **kwargs))
        except Exception as exc:
            self.failures += 1
            pause = min(float(self.max_interval), RETRY_MIN_S * 2 ** min(self.failures - 1, 6))
            log.warning(
                "beat.tick_failed",
                error=f"{type(exc).__name__}: {exc}",
                failures=self.failures,
                retry_in_s=pause,
                leading=self.leading,
            )
            return pause
        if self.failures:
            log.info("beat.recovered", after_failures=self.failures)
        self.failures = 0
        return interval

    def _lead(self) -> bool:
        """Renew the lease, or take it when it is free; False while another beat holds it."""
        if self.lease is None:
            self.lease = get_redis(self.app).lock(
                self.lease_key, timeout=self.lock_timeout, thread_local=False, raise_on_release_error=False
            )
        if self.leading:
            try:
                self.lease.extend(self.lock_timeout, replace_ttl=True)
            except LockError as exc:  # flushed, or expired and maybe taken: step down, then try again
                self.leading = False
                log.warning("beat.lease_lost", error=f"{type(exc).__name__}: {exc}")
            else:
                self.renewed_at = time.monotonic()
                return True
        if not self.lease.acquire(blocking=False):
            return False
        self.leading = True
        self.renewed_at = time.monotonic()
        self.installed = False  # whatever took the lease away may have taken the schedule too
        log.info("beat.leading", lease=self.lease_key, lease_s=self.lock_timeout)
        return True

    def maybe_due(self, entry: Any, **kwargs: Any) -> Any:
        if time.monotonic() - self.renewed_at > self.lock_timeout / 2:
            # The tick stalled past half the lease: another beat may lead by now. Send nothing.
            return self.max_interval
        return super().maybe_due(entry, **kwargs)

    def close(self) -> None:
        if self.leading and self.lease is not None:
            try:
                self.lease.release()
                log.info("beat.lease_released")
            except Exception as exc:  # Redis away: the lease expires by itself
                log.warning("beat.lease_not_released", error=f"{type(exc).__name__}: {exc}")
        self.leading = False
        super().close()
