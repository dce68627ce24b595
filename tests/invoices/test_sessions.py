"""The cap on concurrent 1C calls: leases in real Redis, shared by threads and processes, never
exceeded, and not leaked by a holder killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from integrations.onec.errors import OnecSessionsBusy
from integrations.onec.sessions import LocalSessions, RedisSessions, hold
from tests.harness.waiting import wait_for
from tests.invoices.lease_holder import OVERLAP

ROOT = Path(__file__).resolve().parents[2]


def holder(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.invoices.lease_holder", *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        text=True,
    )


def test_threads_never_hold_more_than_the_cap(redis_client: redis.Redis) -> None:
    sessions = RedisSessions(redis_client, "onec-threads", 3)
    overlap = redis_client.register_script(OVERLAP)
    lock = threading.Lock()
    now = 0
    most = 0

    def work(_: int) -> None:
        nonlocal now, most
        with hold(sessions, ttl_s=10, max_wait_s=30, retry_after_s=1):
            with lock:
                now += 1
                most = max(most, now)
            overlap(keys=["t:now", "t:max"])
            time.sleep(0.002)
            redis_client.decr("t:now")
            with lock:
                now -= 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(work, range(320)))
    assert most == 3
    assert int(redis_client.get("t:max") or 0) == 3
    assert sessions.held() == 0


def test_processes_share_the_cap(redis_client: redis.Redis) -> None:
    procs = [holder("hammer", "onec-procs", "2", "40", "10") for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert int(redis_client.get("onec-procs:done") or 0) == 160
    assert int(redis_client.get("onec-procs:max") or 0) == 2
    assert RedisSessions(redis_client, "onec-procs", 2).held() == 0


def test_a_holder_killed_with_sigkill_frees_its_slot_when_its_lease_expires(
    redis_client: redis.Redis,
) -> None:
    sessions = RedisSessions(redis_client, "onec-kill", 1)
    proc = holder("hold", "onec-kill", "1", "1", "2.0")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    taken_at = time.monotonic()
    assert sessions.try_acquire(10) is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # Dead without releasing: the slot stays taken until the lease runs out, no longer.
    assert sessions.held() == 1
    lease = wait_for(
        lambda: sessions.try_acquire(10), timeout=6, interval=0.05, what="the dead holder's slot"
    )
    assert time.monotonic() - taken_at >= 1.8
    sessions.release(lease)
    assert sessions.held() == 0


def test_a_full_cap_defers_after_the_longest_wait(redis_client: redis.Redis) -> None:
    sessions = RedisSessions(redis_client, "onec-busy", 1)
    first = sessions.try_acquire(10)
    assert first is not None
    start = time.monotonic()
    with pytest.raises(OnecSessionsBusy) as caught, hold(sessions, ttl_s=10, max_wait_s=0.2, retry_after_s=3):
        pass
    waited = time.monotonic() - start
    assert 0.2 <= waited < 1.0
    assert caught.value.retry_after_s == 3
    sessions.release(first)
    with hold(sessions, ttl_s=10, max_wait_s=0, retry_after_s=3):
        assert sessions.held() == 1
    assert sessions.held() == 0


def test_a_waiting_caller_gets_the_slot_given_back(redis_client: redis.Redis) -> None:
    sessions = RedisSessions(redis_client, "onec-wait", 1)
    first = sessions.try_acquire(10)
    assert first is not None
    threading.Timer(0.2, sessions.release, args=[first]).start()
    with hold(sessions, ttl_s=10, max_wait_s=5, retry_after_s=1):
        assert sessions.held() == 1


def test_local_leases_expire_on_their_clock() -> None:
    now = [100.0]
    sessions = LocalSessions(2, clock=lambda: now[0])
    a, b = sessions.try_acquire(5), sessions.try_acquire(5)
    assert a and b and sessions.try_acquire(5) is None
    sessions.release(a)
    assert sessions.try_acquire(5) is not None
    now[0] += 5.1
    assert sessions.held() == 0
