"""Hosted SFTP accounts: synced from partners' profiles into ``sftp_accounts``, then looked up
by username at login. Plain functions taking a session; the caller owns the transaction.

The profile keeps the password encrypted (so the API can mask it and a profile export can
carry it); the account row keeps only a slow scrypt hash, which is what logins are checked
against. A profile change (a new version) is picked up by the next ``sync_accounts``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.enums import PartnerStatus
from gateway.store.models import Partner, SftpAccount
from gateway.transports.sftp.keys import KeyRejected, parse_public_key, public_line
from gateway.transports.sftp.passwords import hash_password, verify_password
from partner_profiles.schema import HostedSftp
from partner_profiles.service import current_profile

log = logging.getLogger("edigate.sftp.accounts")


@dataclass(frozen=True)
class Account:
    """What a login needs to know about an account (no secrets but the hash)."""

    username: str
    partner_id: str
    password_hash: str | None
    public_keys: tuple[str, ...]
    partner_active: bool


@dataclass
class AccountSync:
    """Remembers which profile versions were already looked at (a cache; the database is the truth)."""

    hasher: Callable[[str], str] = hash_password
    seen: dict[str, int] = field(default_factory=dict)


def _accepted_keys(partner_id: str, lines: list[str]) -> list[str]:
    keys: list[str] = []
    for line in lines:
        try:
            keys.append(public_line(parse_public_key(line)))
        except KeyRejected as exc:
            log.warning("partner %s: SFTP public key ignored: %s", partner_id, exc)
    return keys


def _apply(session: Session, partner_id: str, version: int, hosted: HostedSftp | None,
           existing: SftpAccount | None, sync: AccountSync) -> str | None:
    if hosted is None:
        if existing is not None:
            session.delete(existing)
            return existing.username
        return None
    owner = session.get(SftpAccount, hosted.username)
    if owner is not None and owner.partner_id != partner_id:
        log.warning("partner %s: SFTP username %r already belongs to %s; account not created",
                    partner_id, hosted.username, owner.partner_id)
        return None
    password = hosted.password.get_secret_value() if hosted.password is not None else None
    if existing is not None and existing.username != hosted.username:  # renamed: a new login
        session.delete(existing)
        session.flush()
        existing = None
    account: SftpAccount = existing or SftpAccount(
        username=hosted.username, partner_id=partner_id, failed_logins=0)
    if password is None:
        account.password_hash = None
    elif account.password_hash is None or not verify_password(password, account.password_hash):
        account.password_hash = sync.hasher(password)
    account.public_keys = _accepted_keys(partner_id, hosted.public_keys)
    account.profile_version = version
    if existing is None:
        session.add(account)
    session.flush()
    return hosted.username


def accounts_out_of_date(session: Session, sync: AccountSync) -> bool:
    """True when a partner's profile changed since its account (or its absence) was last synced."""
    partners: dict[str, int] = {pid: version for pid, version in session.execute(
        select(Partner.id, Partner.current_version).where(Partner.deleted_at.is_(None)))}
    accounts: dict[str, int] = {pid: version for pid, version in session.execute(
        select(SftpAccount.partner_id, SftpAccount.profile_version))}
    if any(pid not in partners for pid in accounts):
        return True
    return any(accounts.get(pid, sync.seen.get(pid)) != version for pid, version in partners.items())


def sync_accounts(session: Session, box: SecretBox, sync: AccountSync | None = None) -> list[str]:
    """Bring ``sftp_accounts`` in line with the partners' current profiles; returns changed usernames."""
    sync = sync or AccountSync()
    partners = {pid: version for pid, version in session.execute(
        select(Partner.id, Partner.current_version).where(Partner.deleted_at.is_(None)))}
    accounts = {a.partner_id: a for a in session.scalars(select(SftpAccount))}
    changed: list[str] = []
    for partner_id, row in list(accounts.items()):
        if partner_id not in partners:
            session.delete(row)
            changed.append(row.username)
    session.flush()
    for partner_id, version in partners.items():
        account = accounts.get(partner_id)
        if account is not None and account.profile_version == version:
            continue
        if account is None and sync.seen.get(partner_id) == version:
            continue
        loaded = current_profile(session, partner_id, box)
        sync.seen[partner_id] = version
        if loaded is None:
            continue
        profile, _ = loaded
        hosted = profile.transports.sftp.hosted if profile.transports.sftp else None
        username = _apply(session, partner_id, version, hosted, account, sync)
        if username is not None:
            changed.append(username)
    return changed


def find_account(session: Session, username: str) -> Account | None:
    """The account for a username, with whether its partner may log in now."""
    row = session.get(SftpAccount, username)
    if row is None:
        return None
    partner = session.get(Partner, row.partner_id)
    active = (partner is not None and partner.deleted_at is None
              and partner.status is not PartnerStatus.SUSPENDED)
    return Account(row.username, row.partner_id, row.password_hash, tuple(row.public_keys or ()), active)


def account_for_partner(session: Session, partner_id: str) -> SftpAccount | None:
    """The partner's hosted account row, if it has one."""
    return session.scalars(select(SftpAccount).where(SftpAccount.partner_id == partner_id)).first()
