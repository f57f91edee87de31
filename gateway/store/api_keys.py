"""API keys: shown once, stored as SHA-256.

A key is ``edg_`` + 43 base64url characters (256 random bits). Because the key itself carries
256 bits of entropy, a plain SHA-256 is enough: neither brute force nor precomputed tables
can invert it, so a slow hash or a pepper would add cost without adding safety. Leaving the
pepper out also keeps every key valid across a ``secret_key`` rotation. Lookup is by the hash
(a unique index), so no secret is ever compared byte by byte.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.store.core import run, table_of
from gateway.store.enums import ApiKeyRole
from gateway.store.events import append_event
from gateway.store.models import ApiKey
from gateway.store.types import utcnow

KEY_PREFIX = "edg_"
_KEYS = table_of(ApiKey)
# Every authenticated request runs this: built once, run without the ORM (see gateway.store.core).
_BY_HASH = select(
    _KEYS.c.id, _KEYS.c.name, _KEYS.c.role, _KEYS.c.partner_id, _KEYS.c.revoked_at
).where(_KEYS.c.key_hash == bindparam("key_hash"))


class KeyHolder(NamedTuple):
    """The holder of an authenticated key; never the key or its hash."""

    id: uuid.UUID
    name: str
    role: ApiKeyRole
    partner_id: str | None
_DISPLAY_PREFIX_CHARS = 12


def generate_api_key() -> str:
    """A new random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The hex SHA-256 stored for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(
    session: Session,
    *,
    name: str,
    role: ApiKeyRole,
    partner_id: str | None = None,
    actor: str = "cli",
) -> tuple[ApiKey, str]:
    """Store a new key and return its row and the plaintext key (show it once, then drop it)."""
    if role is ApiKeyRole.PARTNER and partner_id is None:
        raise ValueError("a partner key needs a partner_id")
    key = generate_api_key()
    row = ApiKey(
        name=name,
        role=role,
        partner_id=partner_id,
        key_hash=hash_api_key(key),
        prefix=key[:_DISPLAY_PREFIX_CHARS],
    )
    session.add(row)
    session.flush()
    append_event(
        session,
        event_type="api_key.created",
        actor=actor,
        partner_id=partner_id,
        subject_type="api_key",
        subject_id=row.id,
        data={"name": name, "role": role.value, "prefix": row.prefix},
    )
    return row, key


def authenticate_api_key(session: Session, key: str) -> KeyHolder | None:
    """Who holds the active key ``key`` (id, name, role, partner), or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = run(session, _BY_HASH, {"key_hash": hash_api_key(key)}).first()
    if row is None or row.revoked_at is not None:
        return None
    return KeyHolder(row.id, row.name, row.role, row.partner_id)


def revoke_api_key(session: Session, *, key_id: object, actor: str) -> None:
    """Revoke a key; it stops authenticating at once."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise LookupError(f"no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        append_event(
            session,
            event_type="api_key.revoked",
            actor=actor,
            partner_id=row.partner_id,
            subject_type="api_key",
            subject_id=row.id,
            data={"name": row.name, "prefix": row.prefix},
        )
