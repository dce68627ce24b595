"""A process that holds 1C session leases, for the semaphore tests: ``hammer`` (take and give back
leases in a loop, counting how many holders overlap) or ``hold`` (take one and never give it back,
waiting to be killed)."""

from __future__ import annotations

import os
import sys
import time

import redis

from integrations.onec.sessions import RedisSessions, hold

OVERLAP = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


def main(mode: str, name: str, cap: int, count: int, ttl_s: float) -> None:
    client = redis.Redis.from_url(os.environ["OBMEN_BROKER_URL"])
    sessions = RedisSessions(client, name, cap)
    if mode == "hold":
        lease = sessions.try_acquire(ttl_s)
        print("held" if lease else "refused", flush=True)
        time.sleep(3600)
        return
    overlap = client.register_script(OVERLAP)
    for _ in range(count):
        with hold(sessions, ttl_s=ttl_s, max_wait_s=30, retry_after_s=1):
            overlap(keys=[f"{name}:now", f"{name}:max"])
            time.sleep(0.002)
            client.decr(f"{name}:now")
        client.incr(f"{name}:done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
