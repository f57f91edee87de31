"""Token buckets kept in Redis, so that every API process spends from the same budget.

One Lua script refills and spends a bucket atomically on Redis's own clock (``TIME``), so the
processes need not agree on theirs; an idle bucket expires once it would be full again. When
Redis cannot be reached the buckets fall back to this process's own (``TokenBuckets``) and log
it: a limiter outage must not become an API outage. After a failure Redis is left alone for
``RETRY_AFTER`` seconds, so an outage does not add a connection timeout to every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.api.rate_limits import TokenBuckets

log = logging.getLogger(__name__)

KEY_PREFIX = "edigate:rate"
RETRY_AFTER = 5.0  # seconds of per-process limits after Redis failed, before trying it again
_WARN_EVERY = 60.0  # seconds between two "unreachable" warnings

# KEYS[1]: the bucket. ARGV: rate per second, burst, cost (0: only look, spend nothing).
# Returns the seconds to wait as a string (Lua numbers come back truncated to integers), "inf"
# when the bucket never refills.
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil then
  if cost == 0 then return '0' end
  tokens, stamp = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local need = math.max(cost, 1)
local wait = '0'
if tokens >= need then
  tokens = tokens - cost
elseif rate > 0 then
  wait = string.format('%.6f', (need - tokens) / rate)
else
  wait = 'inf'
end
if cost > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'stamp', string.format('%.6f', now))
  local full_in = rate > 0 and math.ceil((burst - tokens) / rate * 1000) + 1000 or 86400000
  redis.call('PEXPIRE', KEYS[1], full_in)
end
return wait
"""


class SharedTokenBuckets:
    """``TokenBuckets`` whose state lives in Redis under ``edigate:rate:<name>:<key>``."""

    def __init__(self, client: redis.Redis, name: str, rate: float, burst: int) -> None:
        self.rate, self.burst, self.name = rate, burst, name
        self._client = client
        self._script = client.register_script(_TAKE)
        self._local = TokenBuckets(rate, burst)
        self._warned_at = -math.inf
        self._down_until = -math.inf
        self._lock = threading.Lock()

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0 when admitted, else the seconds to wait."""
        return self._run(key, cost)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` has a token again (0 when it has one), spending nothing."""
        return self._run(key, 0.0)

    def _run(self, key: Hashable, cost: float) -> float:
        if time.monotonic() >= self._down_until:
            try:
                answer = self._script(keys=[f"{KEY_PREFIX}:{self.name}:{key}"],
                                      args=[repr(float(self.rate)), self.burst, repr(float(cost))])
                return float(answer.decode() if isinstance(answer, bytes) else answer)
            except redis.RedisError as exc:
                self._unreachable(exc)
        return self._local.take(key, cost) if cost else self._local.wait(key)

    def _unreachable(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + RETRY_AFTER
            if now - self._warned_at < _WARN_EVERY:
                return
            self._warned_at = now
        log.warning("rate limits: Redis unreachable (%s); %s is limited per process until it is back",
                    type(exc).__name__, self.name)


def shared_buckets_factory(url: str) -> Callable[[str, float, int], SharedTokenBuckets]:
    """A maker of named shared buckets on one Redis client for ``url``: short timeouts and no
    retries, so a hung Redis delays one request by half a second, not by a retry schedule."""
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0))
    return lambda name, rate, burst: SharedTokenBuckets(client, name, rate, burst)
