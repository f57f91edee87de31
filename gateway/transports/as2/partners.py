"""Partners as AS2 sees them: lookup by AS2 name, certificates, and per-partner interop options.

The AS2 name lives in each partner's current profile (``transports.as2.as2_id``); the lookup
scans live partners' current profile versions and caches the name → partner map briefly (a
new profile version is seen within ``INDEX_SECONDS``; the partner's current version is checked
on every hit).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.processing.profiles import CURRENT_VERSION, ProfileMissing, load_profile
from gateway.secrets import SecretBox
from gateway.store.core import run, table_of
from gateway.store.enums import PartnerStatus
from gateway.store.models import Partner, PartnerProfileVersion
from gateway.transports.as2.certificates import CertificateError, load_certificate, partner_certificates
from gateway.transports.as2.models import As2PartnerCertificate, As2PartnerOptions
from partner_profiles.schema import As2Transport, PartnerProfile

INDEX_SECONDS = 5.0


class As2Options(BaseModel):
    """Interop switches per partner (AS2_NOTES traps 3, 4, 6, 8, 10, 11, 12, 13)."""

    model_config = ConfigDict(extra="forbid")

    legacy_micalg: bool = False  # emit sha256/sha1 instead of RFC 5751 sha-256
    content_transfer_encoding: Literal["binary", "base64"] = "binary"
    chunked: bool = False  # send chunked instead of with Content-Length (Liaison wants the length)
    require_signed_mdn: bool = True  # an unsigned MDN when we asked for a signed one is an error
    allow_expired_certificates: bool = False
    sign_without_attributes: bool = False
    pss: bool = False
    oaep: bool = False
    quote_filename: bool = True
    compress_after_sign: bool = False
    duplicate_mdn: Literal["original", "warning"] = "original"
    our_as2_id: str | None = None  # the AS2-From we use with this partner; default: our active key's


@dataclass(frozen=True)
class As2Partner:
    """Everything needed to talk AS2 with one partner."""

    partner_id: str
    profile: PartnerProfile
    as2: As2Transport
    options: As2Options
    verify_certs: list[x509.Certificate]
    encrypt_certs: list[x509.Certificate]


_index_lock = threading.Lock()
_index: dict[str, str] = {}
_index_at = 0.0


def _normalize(as2_id: str) -> str:
    return as2_id.strip()


def _build_index(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(Partner.id, PartnerProfileVersion.profile)
        .join(
            PartnerProfileVersion,
            (PartnerProfileVersion.partner_id == Partner.id)
            & (PartnerProfileVersion.version == Partner.current_version),
        )
        .where(Partner.deleted_at.is_(None))
    )
    index: dict[str, str] = {}
    for partner_id, profile in rows:
        as2 = ((profile or {}).get("transports") or {}).get("as2") or {}
        if isinstance(as2, dict) and as2.get("as2_id"):
            index[_normalize(str(as2["as2_id"]))] = partner_id
    return index


def find_partner_id_by_as2_id(session: Session, as2_id: str) -> str | None:
    """The live partner whose current profile has ``transports.as2.as2_id == as2_id``."""
    global _index, _index_at
    key = _normalize(as2_id)
    with _index_lock:
        fresh = time.monotonic() - _index_at < INDEX_SECONDS
        found = _index.get(key) if fresh else None
    if found is not None:
        return found
    index = _build_index(session)
    with _index_lock:
        _index, _index_at = index, time.monotonic()
    return index.get(key)


def forget_index() -> None:
    """Drop the cached AS2 name index (tests, profile imports)."""
    global _index_at
    with _index_lock:
        _index_at = 0.0


def load_options(session: Session, partner_id: str) -> As2Options:
    """The partner's AS2 options (defaults when none were set)."""
    row = session.get(As2PartnerOptions, partner_id)
    return As2Options.model_validate(row.options) if row is not None else As2Options()


def save_options(session: Session, partner_id: str, options: As2Options) -> As2PartnerOptions:
    """Replace the partner's AS2 options."""
    data: dict[str, Any] = options.model_dump(mode="json")
    row = session.get(As2PartnerOptions, partner_id)
    if row is None:
        row = As2PartnerOptions(partner_id=partner_id, options=data)
        session.add(row)
    else:
        row.options = data
    session.flush()
    return row


def load_as2_partner(session: Session, partner_id: str, box: SecretBox | None) -> As2Partner | None:
    """The partner's AS2 setup, or None when it is unknown, suspended or has no AS2 section."""
    partner = session.get(Partner, partner_id)
    if partner is None or partner.deleted_at is not None or partner.status is PartnerStatus.SUSPENDED:
        return None
    try:
        profile = load_profile(session, partner_id, box).profile
    except ProfileMissing:
        return None
    as2 = profile.transports.as2
    if as2 is None:
        return None
    return as2_partner_from_profile(session, profile, as2)


def as2_partner_from_profile(session: Session, profile: PartnerProfile, as2: As2Transport) -> As2Partner:
    """Combine a profile's AS2 section with stored certificates and options."""
    verify = partner_certificates(session, profile.id, usage="verify")
    encrypt = partner_certificates(session, profile.id, usage="encrypt")
    if as2.partner_cert:
        try:
            configured = load_certificate(as2.partner_cert.encode())
        except CertificateError:
            configured = None
        if configured is not None:
            verify.append(configured)
            encrypt.append(configured)
    return As2Partner(profile.id, profile, as2, load_options(session, profile.id), verify, encrypt)


_PARTNERS = table_of(Partner)
_VERSIONS = table_of(PartnerProfileVersion)
_OPTIONS = table_of(As2PartnerOptions)
_CERTIFICATES = table_of(As2PartnerCertificate)
# Runs for every message received: built once on the tables, run with gateway.store.core.run.
PARTNER_STAMP = (
    select(
        _PARTNERS.c.status,
        _PARTNERS.c.deleted_at,
        _PARTNERS.c.current_version,
        _VERSIONS.c.profile_sha256,
        _OPTIONS.c.updated_at,
        _CERTIFICATES.c.id,
        _CERTIFICATES.c.status,
        _CERTIFICATES.c.usage,
    )
    .select_from(_PARTNERS)
    .outerjoin(_VERSIONS, CURRENT_VERSION)
    .outerjoin(_OPTIONS, _OPTIONS.c.partner_id == _PARTNERS.c.id)
    .outerjoin(_CERTIFICATES, _CERTIFICATES.c.partner_id == _PARTNERS.c.id)
    .where(_PARTNERS.c.id == bindparam("partner_id"))
    .order_by(_CERTIFICATES.c.id)
)


def partner_stamp(session: Session, partner_id: str) -> tuple[tuple[Any, ...], ...]:
    """What ``load_as2_partner`` depends on, in one query: changes whenever its answer may.

    The partner's status and current profile version (with its hash), its options row's
    ``updated_at``, and each of its certificates' id, status and usage. Empty for no partner.
    """
    return tuple(tuple(row) for row in run(session, PARTNER_STAMP, {"partner_id": partner_id}))


class PartnerCache:
    """Loaded AS2 partners, reused while their ``partner_stamp`` is unchanged (one query a message).

    Keep one per database: stamps of partners in different databases may look alike.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[tuple[Any, ...], ...], As2Partner | None]] = {}

    def get(self, session: Session, partner_id: str, box: SecretBox | None) -> As2Partner | None:
        """The partner as ``load_as2_partner`` returns it, loaded again only after a change."""
        stamp = partner_stamp(session, partner_id)
        if not stamp:
            return None
        with self._lock:
            entry = self._entries.get(partner_id)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        partner = load_as2_partner(session, partner_id, box)
        with self._lock:
            self._entries[partner_id] = (stamp, partner)
        return partner
