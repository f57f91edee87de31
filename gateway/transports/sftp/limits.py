"""Login limits: failed-login lockout (pure rules), per-address throttle and session counting."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures within which window lock an account, and for how long."""

    max_failures: int
    window: timedelta
    lockout: timedelta


@dataclass(frozen=True)
class FailureState:
    """An account's failure counter as stored on its row."""

    failed_logins: int = 0
    first_failed_at: datetime | None = None
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        """True while a lockout is in force."""
        return self.locked_until is not None and self.locked_until > now


def after_failure(state: FailureState, now: datetime, policy: LockoutPolicy) -> FailureState:
    """The state after one more failed login (a new window starts when the old one is over)."""
    if state.first_failed_at is None or now - state.first_failed_at > policy.window or state.is_locked(now):
        count, first = 1, now
    else:
        count, first = state.failed_logins + 1, state.first_failed_at
    locked = now + policy.lockout if count >= policy.max_failures else state.locked_until
    if locked is not None and locked <= now:
        locked = None
    return FailureState(count, first, locked)


def after_success() -> FailureState:
    """The state after a successful login: counters cleared."""
    return FailureState()


class AddressThrottle:
    """Failed logins per source address in this process; too many lock the address out a while."""

    def __init__(self, policy: LockoutPolicy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._states: dict[str, FailureState] = {}

    def is_locked(self, address: str, now: datetime) -> bool:
        """True while the address is locked out."""
        with self._lock:
            state = self._states.get(address)
            return state is not None and state.is_locked(now)

    def record_failure(self, address: str, now: datetime) -> bool:
        """Count a failure; True when this one locked the address."""
        with self._lock:
            before = self._states.get(address, FailureState())
            after = after_failure(before, now, self._policy)
            self._states[address] = after
            if len(self._states) > 10_000:  # forget the oldest quiet addresses
                for key in list(self._states)[:1000]:
                    if not self._states[key].is_locked(now):
                        del self._states[key]
            return after.is_locked(now) and not before.is_locked(now)

    def record_success(self, address: str) -> None:
        """Forget the address's failures."""
        with self._lock:
            self._states.pop(address, None)


class SessionRegistry:
    """Open sessions per account in this server process, with a cap per account."""

    def __init__(self, max_per_account: int) -> None:
        self.max_per_account = max_per_account
        self._lock = threading.Lock()
        self._open: dict[str, int] = defaultdict(int)

    def count(self, username: str) -> int:
        """Sessions open now for the account."""
        with self._lock:
            return self._open.get(username, 0)

    def has_room(self, username: str) -> bool:
        """True when one more session is allowed."""
        return self.count(username) < self.max_per_account

    def open(self, username: str) -> bool:
        """Register a session; False (nothing registered) when the account is at its cap."""
        with self._lock:
            if self._open[username] >= self.max_per_account:
                return False
            self._open[username] += 1
            return True

    def close(self, username: str) -> None:
        """Unregister a session."""
        with self._lock:
            if self._open.get(username, 0) > 0:
                self._open[username] -= 1
            if self._open.get(username) == 0:
                del self._open[username]
