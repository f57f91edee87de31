"""Canonical documents → one X12 interchange, archived and queued for the partner's transport.

Everything happens in the caller's transaction: the control numbers (ISA13, GS06, ST02) are
allocated under their row lock as late as possible, the X12 is written with them and
archived, and the message, its envelope rows, the ack expectations and the outbox entry are
added. A crash or rollback returns the numbers with the work: never reused, never skipped.
Locks are taken in the order inbound processing uses (counters, then the event chain).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.acks.expectations import ExpectationPlan, expect_acknowledgment, plan_for
from gateway.archive.blob_store import BlobRef, BlobStore
from gateway.outbound.errors import DocumentInvalid
from gateway.outbound.routing import outbound_transport
from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.store.blobs import record_blobs
from gateway.store.control_numbers import EnvelopeNumbers, allocate_envelopes
from gateway.store.enums import (
    AckStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    OutboxStatus,
    Transport,
)
from gateway.store.events import append_message_event
from gateway.store.models import Document, FunctionalGroup, Interchange, Message, OutboxEntry, TransactionSet
from partner_profiles.schema import PartnerProfile
from translators.canonical import DOCUMENT_TYPES, CanonicalDocument
from translators.generate import FUNCTIONAL_IDS, GenerationError, generate_interchange

X12_CONTENT_TYPE = "application/edi-x12"


@dataclass(frozen=True)
class Generated:
    """One generated interchange: its message, control numbers and the outbox entry to publish."""

    message_id: uuid.UUID
    outbox_id: int
    interchange_control_number: str
    group_control_number: str
    transaction_control_numbers: tuple[str, ...]


def generate_message(
    session: Session,
    *,
    blobs: BlobStore,
    profile: PartnerProfile,
    documents: Sequence[tuple[Document, CanonicalDocument]],
    now: datetime,
    lease: timedelta,
    correlation_id: str,
    actor: str,
) -> Generated:
    """Write ``documents`` (one type) as one interchange for the partner and queue its send."""
    return generate_messages(
        session,
        blobs=blobs,
        profile=profile,
        interchanges=[(documents, correlation_id)],
        now=now,
        lease=lease,
        actor=actor,
    )[0]


def generate_messages(
    session: Session,
    *,
    blobs: BlobStore,
    profile: PartnerProfile,
    interchanges: Sequence[tuple[Sequence[tuple[Document, CanonicalDocument]], str]],
    now: datetime,
    lease: timedelta,
    actor: str,
) -> list[Generated]:
    """Write each (documents, correlation id) as its own interchange; one allocation, one flush."""
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
    built = [
        _rows(profile, documents, envelope, blob, transport, correlation_id, now)
        for (documents, correlation_id), envelope, blob in zip(interchanges, numbers, refs, strict=True)
    ]
    session.add_all([row for rows in built for row in (rows.message, rows.interchange, rows.group)])
    session.add_all([ts for rows in built for ts in rows.transactions])
    session.flush()  # the relationships order those rows; the rows below only have foreign keys
    entries = []
    for rows, (documents, _) in zip(built, interchanges, strict=True):
        for (row, _), ts in zip(documents, rows.transactions, strict=True):
            row.transaction_id = ts.id
            row.message_id = rows.message.id
            row.status = DocumentStatus.GENERATED
        if rows.plan is not None:
            expect_acknowledgment(
                session,
                plan=rows.plan,
                message_id=rows.message.id,
                interchange=rows.interchange,
                group=rows.group,
                transactions=rows.transactions,
                now=now,
            )
            rows.message.ack_status = AckStatus.PENDING
        entry = OutboxEntry(
            task_name=OUTBOX_SEND_MESSAGE,
            message_id=rows.message.id,
            task_args={"message_id": str(rows.message.id)},
            # Published right after commit; the outbox sweep covers a lost publish.
            status=OutboxStatus.ENQUEUED,
            attempts=1,
            next_attempt_at=now + lease,
        )
        entries.append(entry)
        _record_generated(session, rows, documents, actor)
    session.add_all(entries)
    session.flush()  # the outbox ids, which the published tasks carry
    return [
        Generated(
            rows.message.id,
            entry.id,
            rows.interchange.control_number,
            rows.group.control_number,
            tuple(t.control_number for t in rows.transactions),
        )
        for rows, entry in zip(built, entries, strict=True)
    ]


def _write_x12(
    profile: PartnerProfile,
    documents: Sequence[tuple[Document, CanonicalDocument]],
    numbers: EnvelopeNumbers,
    now: datetime,
) -> str:
    if len({row.document_type for row, _ in documents}) != 1:
        raise ValueError("one interchange carries one document type")
    try:
        return generate_interchange(
            [doc for _, doc in documents],
            profile.translation_settings(),
            now=now,
            interchange_control=numbers.isa13,
            group_control=numbers.gs06,
            transaction_control=numbers.st02[0],
        )
    except GenerationError as exc:
        raise DocumentInvalid([{"field": "(root)", "message": f"cannot be written as X12: {exc}"}]) from exc


@dataclass
class _Rows:
    message: Message
    interchange: Interchange
    group: FunctionalGroup
    transactions: list[TransactionSet]
    plan: ExpectationPlan | None
    document_type: str
    sha256: str


def _rows(
    profile: PartnerProfile,
    documents: Sequence[tuple[Document, CanonicalDocument]],
    numbers: EnvelopeNumbers,
    blob: BlobRef,
    transport: Transport,
    correlation_id: str,
    now: datetime,
) -> _Rows:
    document_type = documents[0][0].document_type
    set_id = DOCUMENT_TYPES[document_type]
    envelope = profile.x12
    isa13 = f"{numbers.isa13:09d}"
    message = Message(
        id=uuid.uuid4(),
        direction=Direction.OUTBOUND,
        transport=transport,
        partner_id=profile.id,
        status=MessageStatus.QUEUED,
        content_sha256=blob.sha256,
        size=blob.size,
        content_type=X12_CONTENT_TYPE,
        filename=f"{set_id}_{isa13}.x12",
        correlation_id=correlation_id,
        received_at=now,
    )
    interchange = Interchange(
        id=uuid.uuid4(),
        message_id=message.id,
        partner_id=profile.id,
        direction=Direction.OUTBOUND,
        position=0,
        sender_qualifier=envelope.our_id.qualifier,
        sender_id=envelope.our_id.id,
        receiver_qualifier=envelope.interchange_id.qualifier,
        receiver_id=envelope.interchange_id.id,
        control_number=isa13,
        version=envelope.control_version,
        usage_indicator=envelope.usage,
        ack_requested=envelope.request_ta1,
        interchange_date=now.strftime("%y%m%d"),
        status=EnvelopeStatus.PENDING,
        correlation_id=correlation_id,
        created_at=now,
    )
    plan = plan_for(envelope, envelope.version)
    group = FunctionalGroup(
        id=uuid.uuid4(),
        interchange_id=interchange.id,
        partner_id=profile.id,
        position=0,
        functional_id=FUNCTIONAL_IDS[set_id],
        application_sender=envelope.own_application_id[:15],
        application_receiver=envelope.partner_application_id[:15],
        control_number=str(numbers.gs06),
        version=envelope.version,
        status=EnvelopeStatus.PENDING,
        ack_status=AckStatus.PENDING if plan else None,
        correlation_id=correlation_id,
        created_at=now,
    )
    transactions = [
        TransactionSet(
            id=uuid.uuid4(),
            group_id=group.id,
            partner_id=profile.id,
            position=position,
            set_id=set_id,
            control_number=f"{st02:04d}",
            status=EnvelopeStatus.PENDING,
            errors=[],
            correlation_id=correlation_id,
            created_at=now,
        )
        for position, st02 in enumerate(numbers.st02)
    ]
    return _Rows(message, interchange, group, transactions, plan, document_type, blob.sha256)


def _record_generated(
    session: Session, rows: _Rows, documents: Sequence[tuple[Document, CanonicalDocument]], actor: str
) -> None:
    message = rows.message
    append_message_event(
        session,
        message,
        event_type="message.generated",
        actor=actor,
        data={
            "document_type": rows.document_type,
            "documents": [str(row.id) for row, _ in documents][:100],
            "count": len(documents),
            "transport": message.transport.value,
            "interchange_control_number": rows.interchange.control_number,
            "group_control_number": rows.group.control_number,
            "transaction_control_numbers": [t.control_number for t in rows.transactions][:100],
            "usage": rows.interchange.usage_indicator,
            "sha256": rows.sha256,
            "ack_expected": rows.plan.ack_type if rows.plan else None,
        },
    )
