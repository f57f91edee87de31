"""AS2 tables (migration 0005): our key pairs, partner certificates, options, and the AS2 ledger.

``As2Exchange`` is one AS2 message in either direction: its AS2 Message-ID, the raw request
and MDN in the archive, the disposition and MIC, and (for async MDNs) the posting state. It is
what duplicate detection and async-MDN matching read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import SHA256_HEX, Base
from gateway.store.types import BigIntId, utcnow


class As2KeyPair(Base):
    """One of our AS2 key pairs (private key encrypted with the SecretBox)."""

    __tablename__ = "as2_key_pairs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    as2_id: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # active | inactive | retired
    certificate_pem: Mapped[str] = mapped_column(Text)
    private_key_ciphertext: Mapped[str] = mapped_column(Text)
    fingerprint_sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    serial_number: Mapped[str] = mapped_column(String(80))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


class As2PartnerCertificate(Base):
    """A partner's certificate: verifies its signatures and/or encrypts what we send it."""

    __tablename__ = "as2_partner_certificates"
    __table_args__ = (UniqueConstraint("partner_id", "fingerprint_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    usage: Mapped[str] = mapped_column(String(16))  # verify | encrypt | both
    status: Mapped[str] = mapped_column(String(16))  # active | retired
    certificate_pem: Mapped[str] = mapped_column(Text)
    fingerprint_sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    subject: Mapped[str] = mapped_column(String(500))
    serial_number: Mapped[str] = mapped_column(String(80))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class As2PartnerOptions(Base):
    """Per-partner AS2 interop switches the profile schema does not (yet) carry."""

    __tablename__ = "as2_partner_options"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    options: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class As2Exchange(Base):
    """One AS2 message in or out, with its raw request, MDN and disposition."""

    __tablename__ = "as2_exchanges"
    __table_args__ = (
        Index("ix_as2_exchanges_partner_direction_msgid", "partner_id", "direction", "as2_message_id"),
        Index("ix_as2_exchanges_mdn_due", "mdn_status", "mdn_next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    direction: Mapped[str] = mapped_column(String(16))  # inbound | outbound
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"), index=True)
    as2_message_id: Mapped[str] = mapped_column(String(1000))
    as2_from: Mapped[str] = mapped_column(String(128))
    as2_to: Mapped[str] = mapped_column(String(128))
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    mdn_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    disposition: Mapped[str | None] = mapped_column(String(200))
    mic: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24))  # processed | failed | duplicate | sent | mdn_failed
    mdn_mode: Mapped[str] = mapped_column(String(8))  # sync | async | none
    mdn_url: Mapped[str | None] = mapped_column(String(2000))
    mdn_status: Mapped[str | None] = mapped_column(String(16))  # pending | sent | failed | received
    mdn_attempts: Mapped[int] = mapped_column(Integer, default=0)
    mdn_next_attempt_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
