"""The ERP's outbound documents: submit (validate, idempotency, generate or batch), flush batches,
and record what the transport did with them.

Plain functions taking the caller's session (the caller owns the transaction), except the
``flush_due_batches``/``after_send`` flows that run one short unit of work per partner or
message on a :class:`~gateway.store.db.Database`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.acks.deadlines import check_document_order
from gateway.acks.expectations import restart_clock
from gateway.acks.notify import DOCUMENT_SENT, notify, subject_for
from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound.errors import IdempotencyConflict, IdempotencyRace, PartnerSuspended, UnknownPartner
from gateway.outbound.generation import Generated, generate_message
from gateway.outbound.validation import validate_document
from gateway.processing.profiles import LoadedProfile, ProfileMissing, load_profile
from gateway.processing.references import business_references, primary_reference
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import Direction, DocumentStatus, MessageStatus, PartnerStatus
from gateway.store.events import append_event
from gateway.store.models import Document, DocumentReference, Message, Partner
from gateway.store.types import utcnow
from translators.canonical import parse_document, to_dict

DOCUMENT_FAILED = "document.failed"


@dataclass(frozen=True)
class Submitted:
    """The answer to one submitted document (``repeated``: an Idempotency-Key seen before)."""

    document_id: uuid.UUID
    message_id: uuid.UUID | None
    status: str
    correlation_id: str
    repeated: bool = False
    batch_due_at: datetime | None = None
    generated: Generated | None = None
    delivery_ids: list[uuid.UUID] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the 202 answer."""
        body: dict[str, Any] = {
            "message_id": str(self.message_id) if self.message_id else None,
            "document_id": str(self.document_id),
            "status": self.status,
            "correlation_id": self.correlation_id,
        }
        if self.generated is not None:
            body["control_numbers"] = {
                "interchange": self.generated.interchange_control_number,
                "group": self.generated.group_control_number,
                "transactions": list(self.generated.transaction_control_numbers),
            }
        if self.batch_due_at is not None:
            body["batch_due_at"] = self.batch_due_at.isoformat()
        return body


def partner_profile(session: Session, partner_id: str, box: SecretBox | None) -> LoadedProfile:
    """The current profile of a partner we may send to (``UnknownPartner``/``PartnerSuspended``)."""
    partner = session.get(Partner, partner_id)
    if partner is None or partner.deleted_at is not None:
        raise UnknownPartner(f"no partner {partner_id!r}")
    if partner.status is PartnerStatus.SUSPENDED:
        raise PartnerSuspended(f"partner {partner_id!r} is suspended")
    try:
        return load_profile(session, partner_id, box)
    except ProfileMissing as exc:
        raise UnknownPartner(str(exc)) from exc


def _repeat(existing: Document, data: dict[str, Any]) -> Submitted:
    if existing.data != data:
        raise IdempotencyConflict("this Idempotency-Key was used with a different document")
    status = (
        "batched" if existing.message_id is None and existing.status is DocumentStatus.PENDING else "queued"
    )
    return Submitted(existing.id, existing.message_id, status, existing.correlation_id, repeated=True)


def submit_document(
    session: Session,
    *,
    blobs: BlobStore,
    box: SecretBox | None,
    partner_id: str,
    document_type: str,
    data: Any,
    idempotency_key: str | None,
    actor: str,
    correlation_id: str,
    lease: timedelta,
    policy: RetryPolicy,
    now: datetime | None = None,
) -> Submitted:
    """Validate one canonical document and generate its interchange (or hold it for the batch)."""
    now = now or utcnow()
    loaded = partner_profile(session, partner_id, box)
    profile = loaded.profile
    document = validate_document(profile, document_type, data)
    canonical = to_dict(document)
    if idempotency_key:
        existing = session.scalars(
            select(Document).where(
                Document.partner_id == partner_id,
                Document.document_type == document_type,
                Document.idempotency_key == idempotency_key,
            )
        ).first()
        if existing is not None:
            return _repeat(existing, canonical)
    row = Document(
        id=uuid.uuid4(),
        partner_id=partner_id,
        direction=Direction.OUTBOUND,
        document_type=document_type,
        profile_version=loaded.version,
        business_reference=primary_reference(document_type, canonical),
        status=DocumentStatus.PENDING,
        data=canonical,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise IdempotencyRace("a request with this Idempotency-Key is being answered") from exc
    session.add_all(
        DocumentReference(document_id=row.id, qualifier=q, value=v) for q, v in business_references(canonical)
    )
    batching = profile.documents[document_type].batching  # type: ignore[index]
    if batching is not None:
        due = now + timedelta(minutes=batching.minutes)
        append_event(
            session,
            event_type="document.batched",
            actor=actor,
            partner_id=partner_id,
            subject_type="document",
            subject_id=row.id,
            correlation_id=correlation_id,
            data={
                "document_type": document_type,
                "business_reference": row.business_reference,
                "batch_due_at": due.isoformat(),
            },
        )
        deliveries = check_document_order(session, profile=profile, document=row, policy=policy, now=now)
        return Submitted(row.id, None, "batched", correlation_id, batch_due_at=due, delivery_ids=deliveries)
    generated = generate_message(
        session,
        blobs=blobs,
        profile=profile,
        documents=[(row, document)],
        now=now,
        lease=lease,
        correlation_id=correlation_id,
        actor=actor,
    )
    deliveries = check_document_order(session, profile=profile, document=row, policy=policy, now=now)
    return Submitted(
        row.id, generated.message_id, "queued", correlation_id, generated=generated, delivery_ids=deliveries
    )


@dataclass(frozen=True)
class PendingBatch:
    """Outbound documents of one partner and type waiting for their interchange."""

    partner_id: str
    document_type: str
    oldest: datetime
    count: int


def pending_batches(session: Session) -> list[PendingBatch]:
    """Every partner and document type with documents waiting to be batched."""
    rows = session.execute(
        select(Document.partner_id, Document.document_type, func.min(Document.created_at), func.count())
        .where(
            Document.direction == Direction.OUTBOUND,
            Document.status == DocumentStatus.PENDING,
            Document.message_id.is_(None),
        )
        .group_by(Document.partner_id, Document.document_type)
    ).all()
    return [PendingBatch(p, t, o, int(n)) for p, t, o, n in rows]


def flush_batch(
    session: Session,
    *,
    blobs: BlobStore,
    box: SecretBox | None,
    batch: PendingBatch,
    lease: timedelta,
    now: datetime,
    force: bool = False,
) -> Generated | None:
    """Generate one interchange for a partner's waiting documents once the batch is due."""
    loaded = load_profile(session, batch.partner_id, box)
    setting = loaded.profile.documents.get(batch.document_type)  # type: ignore[call-overload]
    batching = setting.batching if setting is not None else None
    limit = batching.max_documents if batching is not None else 500
    waiting = batching is not None and batch.oldest + timedelta(minutes=batching.minutes) > now
    if waiting and not force and batch.count < limit:
        return None
    rows = session.scalars(
        select(Document)
        .where(
            Document.partner_id == batch.partner_id,
            Document.document_type == batch.document_type,
            Document.direction == Direction.OUTBOUND,
            Document.status == DocumentStatus.PENDING,
            Document.message_id.is_(None),
        )
        .order_by(Document.created_at, Document.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return None
    documents = [(row, parse_document(row.data)) for row in rows]
    return generate_message(
        session,
        blobs=blobs,
        profile=loaded.profile,
        documents=documents,
        now=now,
        lease=lease,
        correlation_id=uuid.uuid4().hex,
        actor="batch",
    )


def flush_due_batches(
    db: Database, *, blobs: BlobStore, box: SecretBox | None, lease: timedelta, now: datetime | None = None
) -> list[Generated]:
    """Generate every batch that is due, one transaction per partner and document type."""
    now = now or utcnow()
    with db.unit_of_work(read_only=True) as session:
        batches = pending_batches(session)
    generated = []
    for batch in batches:
        with db.unit_of_work() as session:
            made = flush_batch(session, blobs=blobs, box=box, batch=batch, lease=lease, now=now)
        if made is not None:
            generated.append(made)
    return generated


def after_send(
    db: Database,
    message_id: uuid.UUID,
    *,
    box: SecretBox | None,
    policy: RetryPolicy,
    now: datetime | None = None,
) -> list[uuid.UUID]:
    """Once the transport answered: documents sent (or failed), the ack clock restarted; deliveries."""
    now = now or utcnow()
    with db.unit_of_work() as session:
        message = session.get(Message, message_id)
        if message is None or message.partner_id is None or message.direction is not Direction.OUTBOUND:
            return []
        if message.status not in (MessageStatus.SENT, MessageStatus.FAILED):
            return []
        documents = session.scalars(
            select(Document)
            .where(Document.message_id == message_id, Document.status == DocumentStatus.GENERATED)
            .with_for_update()
        ).all()
        sent = message.status is MessageStatus.SENT
        if sent:
            try:
                window = timedelta(
                    hours=load_profile(
                        session, message.partner_id, box
                    ).profile.x12.acknowledgment.expect_within_hours
                )
                restart_clock(session, message_id=message_id, sent_at=now, window=window)
            except ProfileMissing:
                pass
        deliveries: list[uuid.UUID] = []
        event_type = DOCUMENT_SENT if sent else DOCUMENT_FAILED
        for document in documents:
            document.status = DocumentStatus.SENT if sent else DocumentStatus.FAILED
            deliveries.extend(
                notify(
                    session,
                    event_type=event_type,
                    subject_id=subject_for(document.id, event_type),
                    partner_id=message.partner_id,
                    payload={
                        "document_type": document.document_type,
                        "document_id": str(document.id),
                        "business_reference": document.business_reference,
                        "source": {"transport": message.transport.value, "filename": message.filename},
                        "data": {
                            "status": document.status.value,
                            "error": message.error,
                            "receipt_sha256": message.receipt_sha256,
                        },
                    },
                    message_id=message.id,
                    document_id=document.id,
                    correlation_id=document.correlation_id,
                    policy=policy,
                    now=now,
                )
            )
    return deliveries
