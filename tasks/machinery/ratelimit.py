"""The Redis-backed limiter: one leaky bucket per external portal, shared by every worker process.

The same GCRA as :class:`integrations.ratelimit.LocalRateLimiter`, run atomically inside Redis
with Redis's clock, so workers on different machines agree. The embedded demo (in-process broker,
no Redis) gets the local one.
"""

from __future__ import annotations

import redis

from config.celery import is_embedded
from config.settings import Settings
from integrations.ratelimit import Bucket, LocalRateLimiter, RateLimiter, Slot

_RESERVE = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if KEYS[2] then
  local slot = redis.call('GET', KEYS[2])
  if slot then
    local wait = tonumber(slot) - now
    if wait > max_wait then return {0, tostring(wait)} end
    redis.call('DEL', KEYS[2])
    if wait < 0 then wait = 0 end
    return {1, tostring(wait)}
  end
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * cost
local wait = new_tat - interval * burst - now
if wait < 0 then wait = 0 end
if wait <= max_wait or KEYS[2] then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
end
if wait <= max_wait then return {1, tostring(wait)} end
if KEYS[2] then
  redis.call('SET', KEYS[2], tostring(now + wait), 'PX', math.ceil(wait * 1000) + 3600000)
end
return {0, tostring(wait)}
"""

_SATURATE = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local full = now + interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < full then
  redis.call('SET', KEYS[1], tostring(full), 'PX', math.ceil(interval * burst * 1000) + 1000)
end
return 1
"""


class RedisRateLimiter:
    def __init__(self, client: redis.Redis, name: str, bucket: Bucket) -> None:
        self.bucket = bucket
        self._client = client
        self._key = f"obmen:ratelimit:{name}"
        self._reserve = client.register_script(_RESERVE)
        self._saturate = client.register_script(_SATURATE)

    def reserve(self, cost: int = 1, *, max_wait_s: float = 0.0, key: str | None = None) -> Slot:
        keys = [self._key] + ([f"{self._key}:reserved:{key}"] if key else [])
        granted, wait = self._reserve(
            keys=keys, args=[self.bucket.interval_s, self.bucket.burst, cost, max_wait_s]
        )
        return Slot(bool(int(granted)), float(wait))

    def saturate(self) -> None:
        self._saturate(keys=[self._key], args=[self.bucket.interval_s, self.bucket.burst])


def limiter_for(settings: Settings, name: str, bucket: Bucket) -> RateLimiter:
    """A limiter shared by every process on this broker (a local one for the embedded demo)."""
    if is_embedded(settings):
        return LocalRateLimiter(bucket)
    client = redis.Redis.from_url(
        settings.broker_url,
        socket_timeout=settings.broker_socket_timeout_s,
        socket_connect_timeout=settings.broker_socket_timeout_s,
    )
    return RedisRateLimiter(client, name, bucket)
