"""Token buckets in Redis, shared by every replica: one Lua script per call, on the Redis server's clock.

The script refills and checks every bucket of the call, then takes `cost` from all of them or from none, in one
atomic round trip. A bucket's key expires once it would be full again, so idle callers cost no memory.
When Redis cannot answer, the store fails open (the call passes, logged and counted) or closed
(`StoreUnavailableError`), and retries Redis after a short pause so it recovers once Redis is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis.asyncio as redis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from proxy.limits.buckets import RETRY_CREDIT_SECONDS, BucketState, Check, Decision, StoreUnavailableError

log = structlog.get_logger("proxy.limits")

# KEYS: one hash per bucket. ARGV[1] = cost, then capacity and rate (tokens/s) per key.
# Returns {allowed, then per key: whole tokens left, ms until cost fits (0 if it does), ms until full}.
TAKE_ALL = """
local cost = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local levels = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i]); local rate = tonumber(ARGV[2 * i + 1])
  local stored = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(stored[1]); local ts = tonumber(stored[2])
  if tokens == nil or ts == nil then tokens = capacity; ts = now end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000.0)
  levels[i] = tokens
  if tokens < cost then allowed = 0 end
end
local out = {allowed}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i]); local rate = tonumber(ARGV[2 * i + 1])
  local tokens = levels[i]
  local retry = 0
  if allowed == 1 then
    tokens = tokens - cost
    local full_ms = math.ceil((capacity - tokens) * 1000.0 / rate)
    redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
    redis.call('PEXPIRE', key, full_ms + 1000)
  elseif tokens < cost then
    retry = math.ceil((cost - tokens) * 1000.0 / rate)
  end
  out[#out + 1] = math.floor(tokens)
  out[#out + 1] = retry
  out[#out + 1] = math.ceil((capacity - tokens) * 1000.0 / rate)
end
return out
"""

# Free retries of input_required round trips: a counter per round trip that expires.
GRANT_RETRY = """
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
REDEEM_RETRY = """
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return 0 end
if left == 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
return 1
"""


class RedisBuckets:
    """The shared store. `fail_open` lets calls through while Redis is unreachable; otherwise they are refused."""

    def __init__(self, url: str, *, prefix: str, timeout: float, fail_open: bool, retry_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.fail_open = fail_open
        self.retry_seconds = retry_seconds
        self.clock = clock
        self.client: redis.Redis | None = None
        self.script = self.grant_script = self.redeem_script = None
        self.failures = 0  # calls Redis did not answer
        self.passed_unchecked = 0  # calls let through unchecked because of fail_open
        self.down_since: float | None = None
        self.retry_at = 0.0

    async def start(self) -> None:
        # No client-side retries: one short attempt per call, then the failure mode decides.
        self.client = redis.Redis.from_url(self.url, socket_timeout=self.timeout,
                                           socket_connect_timeout=self.timeout, retry=Retry(NoBackoff(), 0))
        self.script = self.client.register_script(TAKE_ALL)
        self.grant_script = self.client.register_script(GRANT_RETRY)
        self.redeem_script = self.client.register_script(REDEEM_RETRY)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def take(self, checks: Sequence[Check], cost: int) -> Decision:
        if self.script is None:
            raise RuntimeError("RedisBuckets.start() was not awaited")
        if self.down_since is not None and self.clock() < self.retry_at:
            return self._unavailable()
        args: list[int | float] = [cost]
        for spec, _ in checks:
            args += [spec.capacity, spec.rate]
        try:
            answer = await self.script(keys=[self.prefix + key for _, key in checks], args=args)
        except (RedisError, OSError, TimeoutError) as error:
            self._went_down(error)
            return self._unavailable()
        if self.down_since is not None:
            log.warning("rate_limit.redis_recovered", down_seconds=round(self.clock() - self.down_since, 3))
            self.down_since = None
        return _decision(checks, answer)

    async def grant_retry(self, key: str) -> None:
        """Best effort: without Redis the retry is simply charged like any call."""
        if self.grant_script is None or self.down_since is not None:
            return
        try:
            await self.grant_script(keys=[self.prefix + key], args=[int(RETRY_CREDIT_SECONDS * 1000)])
        except (RedisError, OSError, TimeoutError) as error:
            self._went_down(error)

    async def redeem_retry(self, key: str) -> bool:
        if self.redeem_script is None or self.down_since is not None:
            return False
        try:
            return bool(await self.redeem_script(keys=[self.prefix + key]))
        except (RedisError, OSError, TimeoutError) as error:
            self._went_down(error)
            return False

    async def ping(self) -> tuple[bool, str]:
        """Readiness: is Redis answering? A fail_open store stays ready, saying it is degraded."""
        try:
            assert self.client is not None
            await self.client.ping()
            return True, "redis reachable"
        except (RedisError, OSError, TimeoutError, AssertionError) as error:
            detail = f"redis unreachable ({error.__class__.__name__}); failing {'open' if self.fail_open else 'closed'}"
            return self.fail_open, detail

    def _went_down(self, error: BaseException) -> None:
        self.failures += 1
        self.retry_at = self.clock() + self.retry_seconds
        if self.down_since is None:
            self.down_since = self.clock()
            log.error("rate_limit.redis_unreachable", error=str(error) or error.__class__.__name__,
                      failure_mode="fail_open" if self.fail_open else "fail_closed")

    def _unavailable(self) -> Decision:
        if not self.fail_open:
            raise StoreUnavailableError("the rate limit store (redis) is unreachable")
        self.passed_unchecked += 1
        return Decision(True, (), degraded=True)


def _decision(checks: Sequence[Check], answer: list[int]) -> Decision:
    states = []
    for index, (spec, _) in enumerate(checks):
        remaining, retry_ms, full_ms = answer[1 + 3 * index: 4 + 3 * index]
        states.append(BucketState(spec, int(remaining), int(retry_ms) / 1000, int(full_ms) / 1000))
    return Decision(bool(answer[0]), tuple(states))

