"""Request rate limits of the API: a token bucket per API key, and a lockout for failed logins.

With a Redis to share (``rate_limit_url``, by default the broker's when it is Redis) every API
process spends from the same buckets (``shared_buckets``); otherwise, as in the embedded
default, each process keeps its own, and with ``serve`` running N API processes a key may make
up to N times its rate. They are a safety valve against a runaway client and against key
guessing, not a quota to bill by.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

MAX_TRACKED = 10_000  # buckets kept per limiter; full (idle) ones are dropped past this


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """``rate`` requests per second per key on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[Hashable, _Bucket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many keys have a bucket now."""
        return len(self._buckets)

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0 when admitted, else the seconds to wait."""
        with self._lock:
            now = self._clock()
            bucket = self._refilled(key, now)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return self._until(bucket, cost)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` has a token again (0 when it has one), spending nothing."""
        with self._lock:
            bucket = self._refilled(key, self._clock())
            return 0.0 if bucket.tokens >= 1 else self._until(bucket, 1.0)

    def _until(self, bucket: _Bucket, cost: float) -> float:
        return (cost - bucket.tokens) / self.rate if self.rate > 0 else math.inf

    def _refilled(self, key: Hashable, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they would start full again anyway)."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.stamp) * self.rate >= self.burst:
                del self._buckets[key]


class Buckets(Protocol):
    """What a limit needs of its buckets, kept in this process or shared through Redis."""

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``'s bucket: 0 when admitted, else the seconds to wait."""
        ...

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` has a token again (0 when it has one), spending nothing."""
        ...


@dataclass(frozen=True)
class ApiRateLimits:
    """The API's limits: requests per key, failed logins per client address."""

    requests: Buckets | None  # None: unlimited
    failed_logins: Buckets

    @classmethod
    def of(cls, per_second: float, burst: int, failed_logins_per_minute: int,
           redis_url: str | None = None) -> ApiRateLimits:
        """Limits from the settings' figures (``per_second`` 0: no per-key limit), shared
        through the Redis at ``redis_url`` when one is given."""
        failures = max(failed_logins_per_minute, 1)
        make: Callable[[str, float, int], Buckets] = _local_buckets
        if redis_url:
            from gateway.api.shared_buckets import shared_buckets_factory

            make = shared_buckets_factory(redis_url)
        requests = make("requests", per_second, burst) if per_second > 0 else None
        return cls(requests, make("failed-logins", failures / 60.0, failures))


def _local_buckets(name: str, rate: float, burst: int) -> Buckets:
    return TokenBuckets(rate, burst)
