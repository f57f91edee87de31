"""The gateway's tables as typed SQLAlchemy 2 models.

Lineage: message → interchange → group → transaction → document → delivery → attempt.
Every business row carries ``partner_id`` and ``correlation_id`` so a timeline can be read
without joins. Blob bytes live in the archive; rows keep only their SHA-256 and size.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gateway.store.enums import (
    AckStatus,
    ApiKeyRole,
    ControlNumberKind,
    DeliveryStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    OutboxStatus,
    PartnerStatus,
    Transport,
)
from gateway.store.types import BigIntId, EnumText, UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA256_HEX = 64


def _pg_fulltext_index(name: str, column: str, *, only_non_null: bool = False) -> Index:
    """A PostgreSQL-only GIN index on ``to_tsvector('simple', column)`` for archive search ``q``."""
    where = text(f"{column} IS NOT NULL") if only_non_null else None
    expression = text(f"to_tsvector('simple'::regconfig, {column})")
    index = Index(name, expression, postgresql_using="gin", postgresql_where=where)
    return index.ddl_if(dialect="postgresql")


class Base(DeclarativeBase):
    """Declarative base with constraint names Alembic can rely on (also in batch mode)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


# --- partners and keys -------------------------------------------------------------------


class Partner(Base):
    """A trading partner; its profile lives in versioned rows."""

    __tablename__ = "partners"
    __table_args__ = (
        # The current profile's x12.interchange_id (cleared on delete): inbound sender lookup.
        Index("ix_partners_interchange", "interchange_qualifier", "interchange_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[PartnerStatus] = mapped_column(EnumText(PartnerStatus, 16))
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    interchange_qualifier: Mapped[str | None] = mapped_column(String(2))
    interchange_id: Mapped[str | None] = mapped_column(String(15))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]

    versions: Mapped[list[PartnerProfileVersion]] = relationship(
        back_populates="partner", order_by="PartnerProfileVersion.version"
    )


class PartnerProfileVersion(Base):
    """One immutable version of a partner's profile document (secrets replaced by refs)."""

    __tablename__ = "partner_profile_versions"
    __table_args__ = (UniqueConstraint("partner_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    profile: Mapped[dict[str, Any]]
    profile_sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[datetime] = _created_at()
    created_by: Mapped[str | None] = mapped_column(String(200))

    partner: Mapped[Partner] = relationship(back_populates="versions")


class PartnerSecret(Base):
    """A partner secret (password, private key) encrypted with ``gateway.secrets``."""

    __tablename__ = "partner_secrets"
    __table_args__ = (UniqueConstraint("partner_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the key; ``prefix`` identifies it in logs."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[ApiKeyRole] = mapped_column(EnumText(ApiKeyRole, 16))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


# --- messages and the X12 envelope tree --------------------------------------------------


class Blob(Base):
    """An archived, immutable byte string known by its SHA-256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(SHA256_HEX), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created_at()


class Message(Base):
    """One transfer in or out (an AS2 message, an SFTP file, an HTTP body)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_partner_direction_received", "partner_id", "direction", "received_at"),
        Index("ix_messages_transport_message_id", "transport", "transport_message_id"),
        UniqueConstraint("partner_id", "idempotency_key"),
        # Archive search (migration 0003): newest-first keyset pages, replay lineage, full text.
        Index("ix_messages_received_at_id", "received_at", "id"),
        Index("ix_messages_replay_of_id", "replay_of_id"),
        _pg_fulltext_index("ix_messages_error_fts", "error", only_non_null=True),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    direction: Mapped[Direction] = mapped_column(EnumText(Direction, 16))
    transport: Mapped[Transport] = mapped_column(EnumText(Transport, 16))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    status: Mapped[MessageStatus] = mapped_column(EnumText(MessageStatus, 16), index=True)
    content_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(500))
    transport_message_id: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"))
    replay_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"))
    ack_status: Mapped[AckStatus | None] = mapped_column(EnumText(AckStatus, 24))
    receipt_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    interchanges: Mapped[list[Interchange]] = relationship(back_populates="message")


class Interchange(Base):
    """An ISA/IEA envelope found in (or written to) a message."""

    __tablename__ = "interchanges"
    __table_args__ = (
        Index(
            "ix_interchanges_duplicate_key",
            "sender_qualifier",
            "sender_id",
            "receiver_qualifier",
            "receiver_id",
            "control_number",
            "created_at",
        ),
        Index("ix_interchanges_partner_control", "partner_id", "direction", "control_number"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), index=True)
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    direction: Mapped[Direction] = mapped_column(EnumText(Direction, 16))
    position: Mapped[int] = mapped_column(Integer, default=0)
    sender_qualifier: Mapped[str] = mapped_column(String(2))
    sender_id: Mapped[str] = mapped_column(String(15))
    receiver_qualifier: Mapped[str] = mapped_column(String(2))
    receiver_id: Mapped[str] = mapped_column(String(15))
    control_number: Mapped[str] = mapped_column(String(9))
    version: Mapped[str] = mapped_column(String(5))
    usage_indicator: Mapped[str] = mapped_column(String(1))
    ack_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    interchange_date: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[EnvelopeStatus] = mapped_column(EnumText(EnvelopeStatus, 24))
    is_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("interchanges.id"))
    correlation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()

    message: Mapped[Message] = relationship(back_populates="interchanges")
    groups: Mapped[list[FunctionalGroup]] = relationship(back_populates="interchange")


class FunctionalGroup(Base):
    """A GS/GE functional group inside an interchange."""

    __tablename__ = "functional_groups"
    __table_args__ = (Index("ix_functional_groups_partner_control", "partner_id", "control_number"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    interchange_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("interchanges.id"), index=True)
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    functional_id: Mapped[str] = mapped_column(String(2))
    application_sender: Mapped[str] = mapped_column(String(15))
    application_receiver: Mapped[str] = mapped_column(String(15))
    control_number: Mapped[str] = mapped_column(String(9))
    version: Mapped[str] = mapped_column(String(12))
    status: Mapped[EnvelopeStatus] = mapped_column(EnumText(EnvelopeStatus, 24))
    ack_status: Mapped[AckStatus | None] = mapped_column(EnumText(AckStatus, 24))
    correlation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()

    interchange: Mapped[Interchange] = relationship(back_populates="groups")
    transactions: Mapped[list[TransactionSet]] = relationship(back_populates="group")


class TransactionSet(Base):
    """An ST/SE transaction set inside a group."""

    __tablename__ = "transaction_sets"
    __table_args__ = (Index("ix_transaction_sets_set_control", "set_id", "control_number"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("functional_groups.id"), index=True)
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    set_id: Mapped[str] = mapped_column(String(3))
    control_number: Mapped[str] = mapped_column(String(9))
    status: Mapped[EnvelopeStatus] = mapped_column(EnumText(EnvelopeStatus, 24))
    errors: Mapped[list[Any]] = mapped_column(default=list)
    correlation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()

    group: Mapped[FunctionalGroup] = relationship(back_populates="transactions")


# --- canonical documents and ERP delivery ------------------------------------------------


class Document(Base):
    """A canonical business document, translated from or to one transaction set."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_type_reference", "document_type", "business_reference"),
        Index("ix_documents_partner_direction_created", "partner_id", "direction", "created_at"),
        UniqueConstraint("partner_id", "document_type", "idempotency_key"),
        _pg_fulltext_index("ix_documents_data_fts", "data"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transaction_sets.id"), unique=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"), index=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    direction: Mapped[Direction] = mapped_column(EnumText(Direction, 16))
    document_type: Mapped[str] = mapped_column(String(64))
    profile_version: Mapped[int | None] = mapped_column(Integer)
    business_reference: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[DocumentStatus] = mapped_column(EnumText(DocumentStatus, 16))
    data: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    correlation_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = _created_at()

    references: Mapped[list[DocumentReference]] = relationship(back_populates="document")


class DocumentReference(Base):
    """A business number found in a document (PO, ASN, invoice, BOL …) for lookups."""

    __tablename__ = "document_references"
    __table_args__ = (UniqueConstraint("document_id", "qualifier", "value"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id"))
    qualifier: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(100), index=True)

    document: Mapped[Document] = relationship(back_populates="references")


class WebhookEndpoint(Base):
    """Where the ERP wants events; the signing secret is encrypted at rest."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(default=list)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    # After a rotation the replaced secret still signs, beside the new one, until this time.
    previous_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None]


class Delivery(Base):
    """One event to deliver to one endpoint; ``webhook_id`` is stable across retries."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    webhook_id: Mapped[str] = mapped_column(String(100), unique=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[str | None] = mapped_column(ForeignKey("partners.id"))
    document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("documents.id"), index=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"), index=True)
    payload: Mapped[dict[str, Any]]
    status: Mapped[DeliveryStatus] = mapped_column(EnumText(DeliveryStatus, 16))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    give_up_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    redelivery_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deliveries.id"))
    correlation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()

    attempts: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", order_by="DeliveryAttempt.id"
    )


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery and what the endpoint answered."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


# --- acknowledgments and control numbers -------------------------------------------------


class AckExpectation(Base):
    """A 997/999 we expect for a functional group we sent, and its review state."""

    __tablename__ = "ack_expectations"
    __table_args__ = (
        Index("ix_ack_expectations_status_due", "status", "due_at"),
        Index(
            "ix_ack_expectations_match",
            "partner_id",
            "group_control_number",
            "functional_id",
        ),
        # Migration 0007_acks: one expectation per sent group AND per sent transaction set.
        Index("ix_ack_expectations_partner_interchange", "partner_id", "interchange_control_number"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("functional_groups.id"), index=True)
    # None: the group's own expectation; else the transaction set this row expects an AK2/AK5 for.
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("transaction_sets.id"), unique=True)
    set_id: Mapped[str | None] = mapped_column(String(3))
    transaction_control_number: Mapped[str | None] = mapped_column(String(9))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), index=True)
    interchange_control_number: Mapped[str] = mapped_column(String(9))
    group_control_number: Mapped[str] = mapped_column(String(9))
    functional_id: Mapped[str] = mapped_column(String(2))
    ack_type: Mapped[str] = mapped_column(String(3))
    status: Mapped[AckStatus] = mapped_column(EnumText(AckStatus, 24))
    due_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    ack_message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    review_note: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()


class DeadlineAlert(Base):
    """A business-deadline alert raised once (migration 0007_acks): rule, subject, level."""

    __tablename__ = "deadline_alerts"
    __table_args__ = (UniqueConstraint("partner_id", "rule", "subject", "level"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    rule: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("documents.id"))
    due_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created_at()


class ControlCounter(Base):
    """The next outbound control number of one kind for one partner."""

    __tablename__ = "control_counters"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    kind: Mapped[ControlNumberKind] = mapped_column(EnumText(ControlNumberKind, 8), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- outbox and event trail --------------------------------------------------------------


class OutboxEntry(Base):
    """Work to enqueue, written in the same transaction as the state it refers to."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id"), index=True)
    task_name: Mapped[str] = mapped_column(String(200))
    task_args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[OutboxStatus] = mapped_column(EnumText(OutboxStatus, 16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """One entry of the append-only, hash-chained event trail (``id`` is the chain position)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_message", "message_id", "id"),
        Index("ix_events_partner_occurred", "partner_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    event_type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(200))
    partner_id: Mapped[str | None] = mapped_column(String(64))
    message_id: Mapped[uuid.UUID | None]
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    hash: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)


class EventChainHead(Base):
    """The single row holding the chain's last position and hash; locked by every append."""

    __tablename__ = "event_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(SHA256_HEX))


# --- SFTP transport (migration 0004_sftp) ------------------------------------------------


class SftpAccount(Base):
    """A partner's hosted SFTP login, synced from its profile; the password only as a slow hash."""

    __tablename__ = "sftp_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    public_keys: Mapped[list[Any]] = mapped_column(default=list)
    profile_version: Mapped[int] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SftpHostKey(Base):
    """One of our SFTP server's host keys (private half encrypted), shared by every server process."""

    __tablename__ = "sftp_host_keys"

    algorithm: Mapped[str] = mapped_column(String(32), primary_key=True)
    private_key: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created_at()


class SftpPollState(Base):
    """When a partner's SFTP server was last polled, and the lease of the poll running now."""

    __tablename__ = "sftp_poll_state"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    last_polled_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# The AS2 ledger, keys and certificates live with their transport but share this metadata.
import gateway.transports.as2.models  # noqa: E402, F401
