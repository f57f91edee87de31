"""Login checks for the hosted server: password (slow hash) or public key, with lockout,
address throttling and a cap on sessions per account. Every decision is audited."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import paramiko

from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.models import SftpAccount
from gateway.store.types import utcnow
from gateway.transports.sftp.accounts import (
    Account,
    AccountSync,
    accounts_out_of_date,
    find_account,
    sync_accounts,
)
from gateway.transports.sftp.audit import record_event
from gateway.transports.sftp.config import SftpTuning
from gateway.transports.sftp.keys import fingerprint, public_line
from gateway.transports.sftp.limits import (
    AddressThrottle,
    FailureState,
    LockoutPolicy,
    SessionRegistry,
    after_failure,
)
from gateway.transports.sftp.passwords import verify_password


@dataclass(frozen=True)
class LoginResult:
    """The outcome of one authentication attempt."""

    ok: bool
    account: Account | None = None
    reason: str = ""


class LoginService:
    """Decides logins against ``sftp_accounts``; shared by every connection of a server."""

    def __init__(self, db: Database, box: SecretBox, tuning: SftpTuning) -> None:
        self.db = db
        self.box = box
        self.policy = LockoutPolicy(
            tuning.max_failed_logins,
            timedelta(seconds=tuning.failure_window_seconds),
            timedelta(seconds=tuning.lockout_seconds),
        )
        self.addresses = AddressThrottle(LockoutPolicy(
            tuning.max_failures_per_address, self.policy.window, self.policy.lockout))
        self.sessions = SessionRegistry(tuning.max_sessions_per_account)
        self._sync = AccountSync()
        self._sync_lock = threading.Lock()

    def refresh_accounts(self) -> None:
        """Pick up profile changes (a cheap read when nothing changed)."""
        with self._sync_lock:
            with self.db.unit_of_work(read_only=True) as session:
                stale = accounts_out_of_date(session, self._sync)
            if stale:
                with self.db.unit_of_work() as session:
                    sync_accounts(session, self.box, self._sync)

    def _load(self, username: str) -> tuple[Account | None, FailureState]:
        self.refresh_accounts()
        with self.db.unit_of_work(read_only=True) as session:
            account = find_account(session, username)
            row = session.get(SftpAccount, username)
            state = (FailureState(row.failed_logins, row.first_failed_at, row.locked_until)
                     if row is not None else FailureState())
        return account, state

    def _precheck(self, username: str, address: str, method: str, now: datetime
                  ) -> tuple[LoginResult | None, Account | None]:
        if self.addresses.is_locked(address, now):
            return self._refuse(username, None, address, method, "address_locked"), None
        account, state = self._load(username)
        if account is None:
            return None, None
        if state.is_locked(now):
            return self._refuse(username, account.partner_id, address, method, "account_locked",
                                locked_until=state.locked_until), account
        if not account.partner_active:
            return self._refuse(username, account.partner_id, address, method, "partner_suspended"), account
        if not self.sessions.has_room(username):
            return self._refuse(username, account.partner_id, address, method, "too_many_sessions"), account
        return None, account

    def _refuse(self, username: str, partner_id: str | None, address: str, method: str, reason: str,
                **data: object) -> LoginResult:
        record_event(self.db, "sftp.login_refused", username=username, partner_id=partner_id,
                     address=address, method=method, reason=reason,
                     extra={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()})
        return LoginResult(False, None, reason)

    def check_password(self, username: str, password: str, address: str) -> LoginResult:
        """Check a password login; failures count towards the account's and address's lockout."""
        now = utcnow()
        refused, account = self._precheck(username, address, "password", now)
        if refused is not None:
            return refused
        if account is not None and account.password_hash and verify_password(password, account.password_hash):
            self._succeeded(account, address)
            return LoginResult(True, account)
        return self._failed_password(username, account, address, now)

    def _failed_password(self, username: str, account: Account | None, address: str, now: datetime
                         ) -> LoginResult:
        address_locked = self.addresses.record_failure(address, now)
        locked_until = None
        if account is not None:
            with self.db.unit_of_work() as session:
                row = session.get(SftpAccount, username, with_for_update=True)
                if row is not None:
                    before = FailureState(row.failed_logins, row.first_failed_at, row.locked_until)
                    state = after_failure(before, now, self.policy)
                    newly_locked = state.is_locked(now) and not (
                        row.locked_until is not None and row.locked_until > now)
                    row.failed_logins, row.first_failed_at = state.failed_logins, state.first_failed_at
                    row.locked_until = state.locked_until
                    locked_until = state.locked_until if newly_locked else None
        partner_id = account.partner_id if account else None
        record_event(self.db, "sftp.login_failed", username=username, partner_id=partner_id,
                     address=address, method="password",
                     reason="bad_password" if account else "unknown_user")
        if locked_until is not None:
            record_event(self.db, "sftp.account_locked", username=username, partner_id=partner_id,
                         address=address, locked_until=locked_until.isoformat())
        if address_locked:
            record_event(self.db, "sftp.address_locked", username=username, partner_id=partner_id,
                         address=address)
        return LoginResult(False, account, "bad_password" if account else "unknown_user")

    def check_public_key(self, username: str, key: paramiko.PKey, address: str) -> LoginResult:
        """Check a public key (called for the unsigned offer and for the signed request)."""
        now = utcnow()
        refused, account = self._precheck(username, address, "publickey", now)
        if refused is not None:
            return refused
        if account is not None and public_line(key) in account.public_keys:
            return LoginResult(True, account)
        return LoginResult(False, account, "unknown_key")

    def _succeeded(self, account: Account, address: str) -> None:
        self.addresses.record_success(address)

    def logged_in(self, account: Account, address: str, method: str, key: paramiko.PKey | None) -> bool:
        """Register the new session and audit the login; False if the account is now at its cap."""
        if not self.sessions.open(account.username):
            self._refuse(account.username, account.partner_id, address, method, "too_many_sessions")
            return False
        with self.db.unit_of_work() as session:
            row = session.get(SftpAccount, account.username)
            if row is not None:
                row.failed_logins, row.first_failed_at, row.locked_until = 0, None, None
                row.last_login_at = utcnow()
        record_event(self.db, "sftp.login", username=account.username, partner_id=account.partner_id,
                     address=address, method=method,
                     key_fingerprint=fingerprint(key) if key is not None else None)
        return True

    def logged_out(self, account: Account, address: str, reason: str, **data: int | str) -> None:
        """Unregister the session and audit how it ended."""
        self.sessions.close(account.username)
        record_event(self.db, "sftp.logout", username=account.username, partner_id=account.partner_id,
                     address=address, reason=reason, extra=data)
