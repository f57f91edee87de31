"""TokenBuckets: bursts, refill, separate keys, and the bound on how many buckets are kept."""

from __future__ import annotations

import math

import pytest

from gateway.api import rate_limits
from gateway.api.rate_limits import ApiRateLimits, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_then_the_next_waits_for_its_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(2.0, 3, clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == 0.5  # one token at 2 per second
    clock.now += 0.5
    assert buckets.take("k") == 0.0
    assert buckets.wait("k") == 0.5


def test_refill_stops_at_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(10.0, 2, clock=clock)
    buckets.take("k")
    clock.now += 3600
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.1]


def test_keys_have_separate_buckets_and_wait_spends_nothing() -> None:
    buckets = TokenBuckets(1.0, 1, clock=Clock())
    assert buckets.wait("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 1.0
    assert buckets.take("b") == 0.0


def test_a_zero_rate_never_refills() -> None:
    buckets = TokenBuckets(0.0, 1, clock=Clock())
    buckets.take("k")
    assert buckets.take("k") == math.inf


def test_idle_buckets_are_dropped_when_too_many_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "MAX_TRACKED", 3)
    clock = Clock()
    buckets = TokenBuckets(1.0, 1, clock=clock)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 10  # a, b and c have refilled
    buckets.take("d")
    assert len(buckets) == 1


def test_no_per_key_limit_when_the_rate_is_zero() -> None:
    limits = ApiRateLimits.of(0, 10, 5)
    assert limits.requests is None
    assert limits.failed_logins.burst == 5
