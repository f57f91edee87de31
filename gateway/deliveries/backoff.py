"""Retry timing for webhook deliveries: exponential, jittered, capped, within a give-up window."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def retry_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): base·2^(n-1) ±20 %, capped."""
    exponent = min(max(attempt - 1, 0), 32)
    delay = min(cap, base * (2**exponent))
    jitter = (rng or random).uniform(0.8, 1.2)
    return float(min(cap, delay * jitter))


def next_attempt_at(
    now: datetime,
    attempt: int,
    *,
    give_up_at: datetime,
    base: float,
    cap: float,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after failed attempt ``attempt``, or None when the window is over."""
    when = now + timedelta(seconds=retry_delay(attempt, base=base, cap=cap, rng=rng))
    return None if when > give_up_at else when
