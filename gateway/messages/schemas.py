"""The archive API's shapes: the search query, message/document views, timeline and replay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.store.enums import (
    AckStatus,
    DeliveryStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    Transport,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
DEFAULT_TIMELINE_SIZE = 500
MAX_TIMELINE_SIZE = 1000


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- search ------------------------------------------------------------------------------


class MessageQuery(BaseModel):
    """Filters of ``GET /messages``; every given filter must match (AND)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    partner: str | None = Field(None, max_length=64, description="partner id")
    direction: Direction | None = None
    transport: Transport | None = None
    document_type: str | None = Field(None, max_length=64, description="e.g. purchase_order")
    status: MessageStatus | None = None
    ack_status: AckStatus | None = None
    received_from: datetime | None = Field(None, description="received at or after (UTC if no zone)")
    received_to: datetime | None = Field(None, description="received before (exclusive)")
    interchange_control_number: str | None = Field(None, max_length=9, description="ISA13")
    group_control_number: str | None = Field(None, max_length=9, description="GS06")
    transaction_control_number: str | None = Field(None, max_length=9, description="ST02")
    reference: str | None = Field(None, max_length=100, description="any PO, ASN or invoice number")
    q: str | None = Field(None, max_length=200, description="full text over documents and errors")
    cursor: str | None = Field(None, max_length=500, description="the `next` of the previous page")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("received_from", "received_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator(
        "partner",
        "document_type",
        "interchange_control_number",
        "group_control_number",
        "transaction_control_number",
        "reference",
        "q",
        "cursor",
    )
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class MessageSummary(_Read):
    """One archived message as listed by the search."""

    id: uuid.UUID
    direction: Direction
    transport: Transport
    partner_id: str | None
    status: MessageStatus
    ack_status: AckStatus | None
    content_type: str | None
    filename: str | None
    size: int
    content_sha256: str
    transport_message_id: str | None
    correlation_id: str
    received_at: datetime
    updated_at: datetime
    is_duplicate: bool
    duplicate_of_id: uuid.UUID | None
    replay_of_id: uuid.UUID | None
    error: str | None


class MessagePage(BaseModel):
    """A page of the search: ``next`` is the cursor of the following page, or null."""

    items: list[MessageSummary]
    next: str | None


# --- the message tree --------------------------------------------------------------------


class ReferenceView(_Read):
    """A business number found in a document."""

    qualifier: str
    value: str


class DocumentSummary(_Read):
    """A canonical document inside a message (its data is at ``GET /documents/{id}``)."""

    id: uuid.UUID
    document_type: str
    direction: Direction
    status: DocumentStatus
    business_reference: str | None
    profile_version: int | None
    transaction_id: uuid.UUID | None
    correlation_id: str
    created_at: datetime
    references: list[ReferenceView] = []


class TransactionView(_Read):
    """An ST/SE transaction set, its outcome and errors, and the document made from it."""

    id: uuid.UUID
    position: int
    set_id: str
    control_number: str
    status: EnvelopeStatus
    errors: list[Any]
    document: DocumentSummary | None = None


class GroupView(_Read):
    """A GS/GE functional group and its acknowledgment status."""

    id: uuid.UUID
    position: int
    functional_id: str
    application_sender: str
    application_receiver: str
    control_number: str
    version: str
    status: EnvelopeStatus
    ack_status: AckStatus | None
    transactions: list[TransactionView] = []


class InterchangeParty(BaseModel):
    """An ISA sender or receiver."""

    qualifier: str
    id: str


class InterchangeView(BaseModel):
    """An ISA/IEA envelope of the message."""

    id: uuid.UUID
    position: int
    sender: InterchangeParty
    receiver: InterchangeParty
    control_number: str
    version: str
    usage_indicator: str
    ack_requested: bool
    interchange_date: str | None
    status: EnvelopeStatus
    is_duplicate: bool
    duplicate_of_id: uuid.UUID | None
    groups: list[GroupView] = []


class AckExpectationView(_Read):
    """A 997/999 we expect for a group we sent, and what came back."""

    id: uuid.UUID
    interchange_control_number: str
    group_control_number: str
    functional_id: str
    ack_type: str
    status: AckStatus
    due_at: datetime
    acknowledged_at: datetime | None
    ack_message_id: uuid.UUID | None
    reviewed_at: datetime | None
    details: dict[str, Any]


class AcknowledgmentView(BaseModel):
    """The message's acknowledgment status: overall, and per expected ack (outbound)."""

    status: AckStatus | None
    expectations: list[AckExpectationView] = []


class ErrorView(BaseModel):
    """One error of the message, located in its envelope tree."""

    level: Literal["message", "transaction"]
    interchange_control_number: str | None = None
    group_control_number: str | None = None
    transaction_control_number: str | None = None
    transaction_id: uuid.UUID | None = None
    error: Any


class MessageDetail(MessageSummary):
    """A message with its envelope tree, documents, acknowledgment, errors and replays."""

    receipt_sha256: str | None
    interchanges: list[InterchangeView]
    documents: list[DocumentSummary]
    acknowledgment: AcknowledgmentView
    errors: list[ErrorView]
    replays: list[uuid.UUID]


# --- documents ---------------------------------------------------------------------------


class MessageLink(_Read):
    """The message a document came in (or went out) with."""

    id: uuid.UUID
    direction: Direction
    transport: Transport
    status: MessageStatus
    received_at: datetime
    replay_of_id: uuid.UUID | None


class InterchangeLink(BaseModel):
    """The interchange that carried a document."""

    id: uuid.UUID
    control_number: str
    sender: InterchangeParty
    receiver: InterchangeParty
    version: str
    status: EnvelopeStatus


class GroupLink(_Read):
    """The functional group that carried a document."""

    id: uuid.UUID
    functional_id: str
    control_number: str
    version: str
    status: EnvelopeStatus
    ack_status: AckStatus | None


class TransactionLink(_Read):
    """The transaction set a document was translated from (or to)."""

    id: uuid.UUID
    set_id: str
    control_number: str
    status: EnvelopeStatus
    errors: list[Any]


class DeliveryAttemptView(_Read):
    """One HTTP attempt of a webhook delivery."""

    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int | None


class DeliveryView(BaseModel):
    """A webhook delivery of the document to the ERP and its attempts (never the secret)."""

    id: uuid.UUID
    webhook_id: str
    endpoint_id: uuid.UUID
    endpoint_name: str | None
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    give_up_at: datetime
    delivered_at: datetime | None
    redelivery_of_id: uuid.UUID | None
    created_at: datetime
    attempts: list[DeliveryAttemptView]


class DocumentLineage(BaseModel):
    """Up to the message that carried the document, down to its deliveries and ack."""

    message: MessageLink | None
    interchange: InterchangeLink | None
    group: GroupLink | None
    transaction: TransactionLink | None
    deliveries: list[DeliveryView]
    ack_expectation: AckExpectationView | None


class DocumentDetail(BaseModel):
    """A canonical document, the profile version it was translated with, and its lineage."""

    id: uuid.UUID
    partner_id: str
    document_type: str
    direction: Direction
    status: DocumentStatus
    business_reference: str | None
    profile_version: int | None
    profile_sha256: str | None
    correlation_id: str
    created_at: datetime
    references: list[ReferenceView]
    data: dict[str, Any]
    lineage: DocumentLineage


# --- timeline ----------------------------------------------------------------------------


class TimelineEvent(_Read):
    """One entry of the hash-chained event trail."""

    id: int
    occurred_at: datetime
    event_type: str
    actor: str | None
    partner_id: str | None
    message_id: uuid.UUID | None
    subject_type: str | None
    subject_id: str | None
    correlation_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class ChainCheck(BaseModel):
    """How the page's events were checked against the chain.

    ``range``: every event from the one before the first to the last was re-hashed and its link
    checked; ``events``: (for long ranges) each listed event and its link to its predecessor.
    """

    mode: Literal["range", "events", "none"]
    first_event_id: int | None
    last_event_id: int | None
    breaks: list[str]


class Timeline(BaseModel):
    """A message's events (its own and its documents' and deliveries'), in chain order."""

    message_id: uuid.UUID
    items: list[TimelineEvent]
    next: str | None
    chain_verified: bool
    chain_check: ChainCheck


# --- replay ------------------------------------------------------------------------------


ControlNumberPolicy = Literal["same", "new"]


class ReplayRequest(BaseModel):
    """What a replay does; both switches must be stated (a replay is explicit)."""

    model_config = ConfigDict(extra="forbid")

    duplicate_check: bool = Field(description="apply the duplicate checks to the replayed message")
    send_acks: bool = Field(description="send (inbound) or expect (outbound) acknowledgments")
    control_numbers: ControlNumberPolicy | None = Field(
        None, description="outbound only: resend with the same control numbers or allocate new ones (default)"
    )


class ReplayResult(BaseModel):
    """The new message created by a replay, linked to the original."""

    message_id: uuid.UUID
    replay_of_id: uuid.UUID
    duplicate_check: bool
    send_acks: bool
    control_numbers: ControlNumberPolicy | None
