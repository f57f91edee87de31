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

from gateway.acks.expectations import expect_acknowledgment, plan_for
from gateway.archive.blob_store import BlobStore
from gateway.outbound.errors import DocumentInvalid
from gateway.outbound.routing import outbound_transport
from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.store.blobs import record_blob
from gateway.store.control_numbers import allocate_envelope
from gateway.store.enums import (
    AckStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    OutboxStatus,
)
from gateway.store.events import append_event
from gateway.store.models import Document, FunctionalGroup, Interchange, Message, TransactionSet
from gateway.store.outbox import add_outbox_entry
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
    if not documents:
        raise ValueError("nothing to generate")
    types = {row.document_type for row, _ in documents}
    if len(types) != 1:
        raise ValueError("one interchange carries one document type")
    document_type = types.pop()
    set_id = DOCUMENT_TYPES[document_type]
    envelope = profile.x12
    transport = outbound_transport(profile)
    numbers = allocate_envelope(session, partner_id=profile.id, transactions=len(documents))
    try:
        text = generate_interchange(
            [doc for _, doc in documents],
            profile.translation_settings(),
            now=now,
            interchange_control=numbers.isa13,
            group_control=numbers.gs06,
            transaction_control=numbers.st02[0],
        )
    except GenerationError as exc:
        raise DocumentInvalid([{"field": "(root)", "message": f"cannot be written as X12: {exc}"}]) from exc
    blob = blobs.put_bytes(text.encode("utf-8"))
    record_blob(session, blob)
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
    session.add(message)
    session.flush()
    session.add(interchange)
    session.flush()
    session.add(group)
    session.flush()
    session.add_all(transactions)
    session.flush()
    for (row, _), ts in zip(documents, transactions, strict=True):
        row.transaction_id = ts.id
        row.message_id = message.id
        row.status = DocumentStatus.GENERATED
    if plan is not None:
        expect_acknowledgment(
            session,
            plan=plan,
            message_id=message.id,
            interchange=interchange,
            group=group,
            transactions=transactions,
            now=now,
        )
        message.ack_status = AckStatus.PENDING
    entry = add_outbox_entry(
        session,
        task_name=OUTBOX_SEND_MESSAGE,
        message_id=message.id,
        task_args={"message_id": str(message.id)},
    )
    entry.status = OutboxStatus.ENQUEUED  # published right after commit; the sweep covers a lost one
    entry.attempts = 1
    entry.next_attempt_at = now + lease
    append_event(
        session,
        event_type="message.generated",
        actor=actor,
        partner_id=profile.id,
        message_id=message.id,
        subject_type="message",
        subject_id=message.id,
        correlation_id=correlation_id,
        data={
            "document_type": document_type,
            "documents": [str(row.id) for row, _ in documents][:100],
            "count": len(documents),
            "transport": transport.value,
            "interchange_control_number": isa13,
            "group_control_number": group.control_number,
            "transaction_control_numbers": [t.control_number for t in transactions][:100],
            "usage": envelope.usage,
            "sha256": blob.sha256,
            "ack_expected": plan.ack_type if plan else None,
        },
    )
    return Generated(
        message.id, entry.id, isa13, group.control_number, tuple(t.control_number for t in transactions)
    )
