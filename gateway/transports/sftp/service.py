"""What the API shows and changes about SFTP: host keys, a partner's account and poll state.

Plain functions taking a session; the caller owns the transaction. No secret (password,
hash, private key) ever leaves these functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.events import append_event
from gateway.store.models import SftpPollState
from gateway.store.types import utcnow
from gateway.transports.sftp.accounts import account_for_partner, sync_accounts
from gateway.transports.sftp.keys import fingerprint, host_key_infos, parse_public_key
from gateway.transports.sftp.paths import INBOUND, OUTBOUND, MailboxLayout
from partner_profiles.service import current_profile


class NoSftpAccount(LookupError):
    """The partner has no hosted SFTP account."""


def host_keys_body(session: Session, port: int) -> dict[str, Any]:
    """The server's host keys (public line, fingerprint) and port."""
    return {
        "port": port,
        "items": [{"algorithm": k.algorithm, "public_key": k.public_key, "fingerprint": k.fingerprint}
                  for k in host_key_infos(session)],
    }


def _count_files(folder: Path) -> int:
    try:
        with os.scandir(folder) as scan:
            return sum(1 for entry in scan if entry.is_file(follow_symlinks=False))
    except OSError:
        return 0


def partner_sftp_status(session: Session, partner_id: str, box: SecretBox, layout: MailboxLayout
                        ) -> dict[str, Any] | None:
    """The partner's hosted account (no secrets) and remote poll state; None if the partner is unknown."""
    loaded = current_profile(session, partner_id, box)
    if loaded is None:
        return None
    sync_accounts(session, box)
    sftp = loaded[0].transports.sftp
    body: dict[str, Any] = {"partner_id": partner_id, "hosted": None, "remote": None}
    account = account_for_partner(session, partner_id)
    if account is not None:
        body["hosted"] = {
            "username": account.username,
            "password_set": account.password_hash is not None,
            "public_keys": [{"type": line.split()[0], "fingerprint": fingerprint(parse_public_key(line))}
                            for line in account.public_keys],
            "locked_until": account.locked_until.isoformat() if account.locked_until else None,
            "failed_logins": account.failed_logins,
            "last_login_at": account.last_login_at.isoformat() if account.last_login_at else None,
            "outbound_files": _count_files(layout.folder(account.username, OUTBOUND)),
            "inbound_unfinished": _count_files(layout.folder(account.username, INBOUND)),
        }
    if sftp is not None and sftp.remote is not None:
        state = session.get(SftpPollState, partner_id)
        remote = sftp.remote
        body["remote"] = {
            "host": remote.host, "port": remote.port, "username": remote.username,
            "inbound_dir": remote.inbound_dir, "outbound_dir": remote.outbound_dir, "pattern": remote.pattern,
            "poll_seconds": remote.poll_seconds,
            "last_polled_at": state.last_polled_at.isoformat() if state and state.last_polled_at else None,
            "last_error": state.last_error if state else None,
        }
    return body


def unlock_account(session: Session, partner_id: str, *, actor: str) -> str:
    """Lift a login lockout on the partner's hosted account; returns its username."""
    account = account_for_partner(session, partner_id)
    if account is None:
        raise NoSftpAccount(partner_id)
    was_locked = account.locked_until is not None and account.locked_until > utcnow()
    account.failed_logins, account.first_failed_at, account.locked_until = 0, None, None
    append_event(session, event_type="sftp.account_unlocked", actor=actor, partner_id=partner_id,
                 subject_type="sftp_account", subject_id=account.username,
                 data={"username": account.username, "was_locked": was_locked})
    return account.username
