"""Failed-login lockout rules, the per-address throttle and the per-account session cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.transports.sftp.limits import (
    AddressThrottle,
    FailureState,
    LockoutPolicy,
    SessionRegistry,
    after_failure,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=3, window=timedelta(minutes=15), lockout=timedelta(minutes=10))


def _fail(times: int, step: timedelta = timedelta(seconds=1)) -> FailureState:
    state = FailureState()
    for i in range(times):
        state = after_failure(state, T0 + i * step, POLICY)
    return state


def test_the_third_failure_within_the_window_locks_the_account() -> None:
    assert not _fail(2).is_locked(T0 + timedelta(seconds=2))
    locked = _fail(3)
    assert locked.is_locked(T0 + timedelta(seconds=3))
    assert locked.locked_until == T0 + timedelta(seconds=2) + POLICY.lockout


def test_a_lockout_is_temporary() -> None:
    locked = _fail(3)
    assert not locked.is_locked(T0 + timedelta(minutes=11))


def test_failures_spread_beyond_the_window_do_not_lock() -> None:
    state = _fail(5, step=timedelta(minutes=8))
    assert not state.is_locked(T0 + timedelta(minutes=33))


def test_an_address_with_too_many_failures_is_throttled_and_success_forgets_it() -> None:
    throttle = AddressThrottle(POLICY)
    assert [throttle.record_failure("10.0.0.1", T0) for _ in range(3)] == [False, False, True]
    assert throttle.is_locked("10.0.0.1", T0) and not throttle.is_locked("10.0.0.2", T0)
    throttle.record_success("10.0.0.1")
    assert not throttle.is_locked("10.0.0.1", T0)


def test_sessions_per_account_are_capped_and_released() -> None:
    sessions = SessionRegistry(max_per_account=2)
    assert sessions.open("acme") and sessions.open("acme") and not sessions.open("acme")
    assert sessions.open("globex")
    sessions.close("acme")
    assert sessions.has_room("acme") and sessions.count("acme") == 1
