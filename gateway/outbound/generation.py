"""Canonical documents → X12 interchanges, archived and queued for the partner's transport.

Everything happens in the caller's transaction: the control numbers (ISA13, GS06, ST02) are
allocated under their row lock as late as possible, the X12 is written with them and
archived, and the message, its envelope rows, the ack expectations and the outbox entry are
inserted. A crash or rollback returns the numbers with the work: never reused, never skipped.
Locks are taken in the order inbound processing uses (counters, then the event chain).

The rows are plain dicts written by :func:`gateway.store.core.insert_tables`: on PostgreSQL
one statement for every row of every interchange (the ORM's unit of work cost about 1 ms of
CPU per document). New documents (``OutboundDocument.row``) are inserted already generated,
with their transaction and message; stored ones (a batch) are updated.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from gateway.acks.expectations import expectation_rows, plan_for
from gateway.archive.blob_store import BlobRef, BlobStore
from gateway.outbound.errors import DocumentInvalid
from gateway.outbound.routing import outbound_transport
from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.processing.references import business_references
from gateway.store.blobs import record_blobs
from gateway.store.control_numbers import EnvelopeNumbers, allocate_envelopes
from gateway.store.core import insert_tables, run, table_of
from gateway.store.enums import (
    AckStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    Transport,
)
from gateway.store.events import MessageRef, append_message_event
from gateway.store.models import (
    AckExpectation,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    TransactionSet,
)
from gateway.store.outbox import enqueued_row
from partner_profiles.schema import PartnerProfile
from translators.canonical import DOCUMENT_TYPES, CanonicalDocument
from translators.generate import FUNCTIONAL_IDS, GenerationError, generate_interchange
from translators.maps import MappedSet

X12_CONTENT_TYPE = "application/edi-x12"
_MESSAGES = table_of(Message)
_INTERCHANGES = table_of(Interchange)
_GROUPS = table_of(FunctionalGroup)
_TRANSACTIONS = table_of(TransactionSet)
_DOCUMENTS = table_of(Document)
_REFERENCES = table_of(DocumentReference)
_EXPECTATIONS = table_of(AckExpectation)
_OUTBOX = table_of(OutboxEntry)
# Parents first: elsewhere than PostgreSQL a foreign key is checked row by row.
_TABLE_ORDER = (
    _MESSAGES, _INTERCHANGES, _GROUPS, _TRANSACTIONS, _DOCUMENTS, _REFERENCES, _EXPECTATIONS, _OUTBOX,
)
_MARK_GENERATED = (
    update(_DOCUMENTS)
    .where(_DOCUMENTS.c.id == bindparam("document_id"))
    .values(
        transaction_id=bindparam("new_transaction_id"),
        message_id=bindparam("new_message_id"),
        status=DocumentStatus.GENERATED,
    )
)


@dataclass(frozen=True)
class OutboundDocument:
    """A document to write into an interchange; ``row``: its new documents row (None: stored already).

    ``mapped``: its X12 body when validation has mapped it already (not mapped again).
    """

    id: uuid.UUID
    document_type: str
    correlation_id: str
    document: CanonicalDocument
    row: dict[str, Any] | None = None
    mapped: MappedSet | None = None


@dataclass(frozen=True)
class Generated:
    """One generated interchange: its message, control numbers and the outbox entry to publish."""

    message_id: uuid.UUID
    outbox_id: int
    interchange_control_number: str
    group_control_number: str
    transaction_control_numbers: tuple[str, ...]


@dataclass
class _Staged:
    """One call's rows of every interchange, by table, and the stored documents to update."""

    session: Session
    profile: PartnerProfile
    transport: Transport
    now: datetime
    lease: timedelta
    actor: str
    rows: dict[Any, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in _TABLE_ORDER})
    stored: list[dict[str, Any]] = field(default_factory=list)


def generate_messages(
    session: Session,
    *,
    blobs: BlobStore,
    profile: PartnerProfile,
    interchanges: Sequence[tuple[Sequence[OutboundDocument], str]],
    now: datetime,
    lease: timedelta,
    actor: str,
) -> list[Generated]:
    """Write each (documents of one type, correlation id) as its own interchange, all in one insert."""
    if not interchanges or any(not documents for documents, _ in interchanges):
        raise ValueError("nothing to generate")
    transport = outbound_transport(profile)
    numbers = allocate_envelopes(
        session, partner_id=profile.id, transactions=[len(documents) for documents, _ in interchanges]
    )
    texts = [
        _write_x12(profile, documents, envelope, now)
        for (documents, _), envelope in zip(interchanges, numbers, strict=True)
    ]
    refs = blobs.put_many([text.encode("utf-8") for text in texts])
    record_blobs(session, refs)
    staged = _Staged(session, profile, transport, now, lease, actor)
    made = [
        _stage(staged, documents, envelope, blob, correlation_id)
        for (documents, correlation_id), envelope, blob in zip(interchanges, numbers, refs, strict=True)
    ]
    entries = insert_tables(
        session, [(table, staged.rows[table]) for table in _TABLE_ORDER], returning=("id", "message_id")
    )
    if staged.stored:
        run(session, _MARK_GENERATED, staged.stored)
    outbox_ids = {entry.message_id: entry.id for entry in entries}
    return [
        Generated(message_id, outbox_ids[message_id], isa13, gs06, st02s)
        for message_id, isa13, gs06, st02s in made
    ]


def _write_x12(
    profile: PartnerProfile, documents: Sequence[OutboundDocument], numbers: EnvelopeNumbers, now: datetime
) -> str:
    if len({document.document_type for document in documents}) != 1:
        raise ValueError("one interchange carries one document type")
    try:
        return generate_interchange(
            [document.mapped or document.document for document in documents],
            profile.translation_settings(),
            now=now,
            interchange_control=numbers.isa13,
            group_control=numbers.gs06,
            transaction_control=numbers.st02[0],
        )
    except GenerationError as exc:
        raise DocumentInvalid([{"field": "(root)", "message": f"cannot be written as X12: {exc}"}]) from exc


def _stage(
    staged: _Staged,
    documents: Sequence[OutboundDocument],
    numbers: EnvelopeNumbers,
    blob: BlobRef,
    correlation_id: str,
) -> tuple[uuid.UUID, str, str, tuple[str, ...]]:
    """Stage one interchange's rows and record its event; (message id, ISA13, GS06, ST02s)."""
    document_type = documents[0].document_type
    envelope = staged.profile.x12
    plan = plan_for(envelope, envelope.version)
    message, interchange, group, transactions = _envelope_rows(
        staged, DOCUMENT_TYPES[document_type], numbers, blob, correlation_id, acknowledged=plan is not None
    )
    staged.rows[_MESSAGES].append(message)
    staged.rows[_INTERCHANGES].append(interchange)
    staged.rows[_GROUPS].append(group)
    staged.rows[_TRANSACTIONS].extend(transactions)
    for document, transaction in zip(documents, transactions, strict=True):
        _stage_document(staged, document, transaction["id"], message["id"])
    if plan is not None:
        staged.rows[_EXPECTATIONS].extend(
            expectation_rows(
                plan,
                message_id=message["id"],
                interchange_control_number=interchange["control_number"],
                group=group,
                transactions=transactions,
                now=staged.now,
            )
        )
    staged.rows[_OUTBOX].append(
        enqueued_row(
            OUTBOX_SEND_MESSAGE, message["id"], {"message_id": str(message["id"])},
            now=staged.now, lease=staged.lease,
        )
    )
    st02s = tuple(t["control_number"] for t in transactions)
    append_message_event(
        staged.session,
        MessageRef(message["id"], staged.profile.id, correlation_id),
        event_type="message.generated",
        actor=staged.actor,
        data={
            "document_type": document_type,
            "documents": [str(document.id) for document in documents][:100],
            "count": len(documents),
            "transport": staged.transport.value,
            "interchange_control_number": interchange["control_number"],
            "group_control_number": group["control_number"],
            "transaction_control_numbers": list(st02s[:100]),
            "usage": envelope.usage,
            "sha256": blob.sha256,
            "ack_expected": plan.ack_type if plan else None,
        },
    )
    return message["id"], interchange["control_number"], group["control_number"], st02s


def _envelope_rows(
    staged: _Staged,
    set_id: str,
    numbers: EnvelopeNumbers,
    blob: BlobRef,
    correlation_id: str,
    *,
    acknowledged: bool,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The message, interchange, group and transaction set rows of one outbound interchange."""
    profile, envelope, now = staged.profile, staged.profile.x12, staged.now
    isa13 = f"{numbers.isa13:09d}"
    ack_status = AckStatus.PENDING if acknowledged else None
    message = {
        "id": uuid.uuid4(),
        "direction": Direction.OUTBOUND,
        "transport": staged.transport,
        "partner_id": profile.id,
        "status": MessageStatus.QUEUED,
        "content_sha256": blob.sha256,
        "size": blob.size,
        "content_type": X12_CONTENT_TYPE,
        "filename": f"{set_id}_{isa13}.x12",
        "transport_message_id": None,
        "idempotency_key": None,
        "correlation_id": correlation_id,
        "received_at": now,
        "duplicate_of_id": None,
        "replay_of_id": None,
        "ack_status": ack_status,
        "receipt_sha256": None,
        "error": None,
        "updated_at": now,
    }
    interchange = {
        "id": uuid.uuid4(),
        "message_id": message["id"],
        "partner_id": profile.id,
        "direction": Direction.OUTBOUND,
        "position": 0,
        "sender_qualifier": envelope.our_id.qualifier,
        "sender_id": envelope.our_id.id,
        "receiver_qualifier": envelope.interchange_id.qualifier,
        "receiver_id": envelope.interchange_id.id,
        "control_number": isa13,
        "version": envelope.control_version,
        "usage_indicator": envelope.usage,
        "ack_requested": envelope.request_ta1,
        "interchange_date": now.strftime("%y%m%d"),
        "status": EnvelopeStatus.PENDING,
        "duplicate_of_id": None,
        "correlation_id": correlation_id,
        "created_at": now,
    }
    group = {
        "id": uuid.uuid4(),
        "interchange_id": interchange["id"],
        "partner_id": profile.id,
        "position": 0,
        "functional_id": FUNCTIONAL_IDS[set_id],
        "application_sender": envelope.own_application_id[:15],
        "application_receiver": envelope.partner_application_id[:15],
        "control_number": str(numbers.gs06),
        "version": envelope.version,
        "status": EnvelopeStatus.PENDING,
        "ack_status": ack_status,
        "correlation_id": correlation_id,
        "created_at": now,
    }
    transactions = [
        {
            "id": uuid.uuid4(),
            "group_id": group["id"],
            "partner_id": profile.id,
            "position": position,
            "set_id": set_id,
            "control_number": f"{st02:04d}",
            "status": EnvelopeStatus.PENDING,
            "errors": [],
            "correlation_id": correlation_id,
            "created_at": now,
        }
        for position, st02 in enumerate(numbers.st02)
    ]
    return message, interchange, group, transactions


def _stage_document(
    staged: _Staged, document: OutboundDocument, transaction_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    if document.row is None:
        staged.stored.append(
            {"document_id": document.id, "new_transaction_id": transaction_id, "new_message_id": message_id}
        )
        return
    staged.rows[_DOCUMENTS].append(
        document.row
        | {"transaction_id": transaction_id, "message_id": message_id, "status": DocumentStatus.GENERATED}
    )
    staged.rows[_REFERENCES].extend(document_reference_rows(document.id, document.row["data"]))


def document_reference_rows(document_id: uuid.UUID, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``document_references`` rows of a new document (its PO, ASN, invoice numbers …)."""
    return [
        {"document_id": document_id, "qualifier": qualifier, "value": value}
        for qualifier, value in business_references(data)
    ]
