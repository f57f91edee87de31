"""The ERP's outbound documents: submit (validate, idempotency, generate or batch) and flush batches
(what the transport did with them is recorded by :mod:`gateway.outbound.settling`).

Plain functions taking the caller's session (the caller owns the transaction), except
``flush_due_batches``, which runs one short unit of work per partner and document type on a
:class:`~gateway.store.db.Database`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.acks.deadlines import check_document_order
from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound.errors import (
    DocumentInvalid,
    IdempotencyConflict,
    IdempotencyRace,
    PartnerSuspended,
    UnknownPartner,
)
from gateway.outbound.generation import (
    Generated,
    OutboundDocument,
    document_reference_rows,
    generate_messages,
)
from gateway.outbound.validation import validate_and_map
from gateway.processing.profiles import (
    CURRENT_VERSION,
    LoadedProfile,
    ProfileMissing,
    load_profile,
    profile_version,
)
from gateway.processing.references import primary_reference
from gateway.secrets import SecretBox
from gateway.store.core import insert_tables, run, table_of
from gateway.store.db import Database
from gateway.store.enums import Direction, DocumentStatus, PartnerStatus
from gateway.store.events import append_event
from gateway.store.models import Document, DocumentReference, Partner, PartnerProfileVersion
from gateway.store.types import utcnow
from partner_profiles.schema import PartnerProfile
from translators.canonical import CanonicalDocument, parse_document, to_dict
from translators.maps import MappedSet

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


_PARTNERS = table_of(Partner)
_DOCUMENTS = table_of(Document)
_REFERENCES = table_of(DocumentReference)
_VERSIONS = table_of(PartnerProfileVersion)
# The partner's state and its current profile version in one read (the profile is cached).
_PARTNER_STATE = (
    select(
        _PARTNERS.c.status, _PARTNERS.c.deleted_at, _PARTNERS.c.current_version, _VERSIONS.c.profile_sha256
    )
    .outerjoin(_VERSIONS, CURRENT_VERSION)
    .where(_PARTNERS.c.id == bindparam("partner_id"))
)
_BY_IDEMPOTENCY_KEY = select(
    _DOCUMENTS.c.id,
    _DOCUMENTS.c.idempotency_key,
    _DOCUMENTS.c.data,
    _DOCUMENTS.c.message_id,
    _DOCUMENTS.c.status,
    _DOCUMENTS.c.correlation_id,
).where(
    _DOCUMENTS.c.partner_id == bindparam("partner_id"),
    _DOCUMENTS.c.document_type == bindparam("document_type"),
    _DOCUMENTS.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)
_WAITING_FOR_BATCH = (
    select(_DOCUMENTS.c.id, _DOCUMENTS.c.correlation_id, _DOCUMENTS.c.data)
    .where(
        _DOCUMENTS.c.partner_id == bindparam("partner_id"),
        _DOCUMENTS.c.document_type == bindparam("document_type"),
        _DOCUMENTS.c.direction == Direction.OUTBOUND,
        _DOCUMENTS.c.status == DocumentStatus.PENDING,
        _DOCUMENTS.c.message_id.is_(None),
    )
    .order_by(_DOCUMENTS.c.created_at, _DOCUMENTS.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# The unique key that makes a second document with the same Idempotency-Key fail.
IDEMPOTENCY_CONSTRAINT = "uq_documents_partner_id_document_type_idempotency_key"


def partner_profile(session: Session, partner_id: str, box: SecretBox | None) -> LoadedProfile:
    """The current profile of a partner we may send to (``UnknownPartner``/``PartnerSuspended``)."""
    partner = run(session, _PARTNER_STATE, {"partner_id": partner_id}).first()
    if partner is None or partner.deleted_at is not None:
        raise UnknownPartner(f"no partner {partner_id!r}")
    if partner.status is PartnerStatus.SUSPENDED:
        raise PartnerSuspended(f"partner {partner_id!r} is suspended")
    try:
        return profile_version(session, partner_id, partner.current_version, partner.profile_sha256, box)
    except ProfileMissing as exc:
        raise UnknownPartner(str(exc)) from exc


def _repeat(existing: Row[Any], data: dict[str, Any]) -> Submitted:
    if existing.data != data:
        raise IdempotencyConflict("this Idempotency-Key was used with a different document")
    status = (
        "batched" if existing.message_id is None and existing.status is DocumentStatus.PENDING else "queued"
    )
    return Submitted(existing.id, existing.message_id, status, existing.correlation_id, repeated=True)


@dataclass(frozen=True)
class Submission:
    """One canonical document as the ERP posted it."""

    data: Any
    idempotency_key: str | None
    correlation_id: str


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
    return submit_documents(
        session,
        blobs=blobs,
        box=box,
        partner_id=partner_id,
        document_type=document_type,
        submissions=[Submission(data, idempotency_key, correlation_id)],
        actor=actor,
        lease=lease,
        policy=policy,
        now=now,
        prefix_fields=False,
    )[0]


def submit_documents(
    session: Session,
    *,
    blobs: BlobStore,
    box: SecretBox | None,
    partner_id: str,
    document_type: str,
    submissions: Sequence[Submission],
    actor: str,
    lease: timedelta,
    policy: RetryPolicy,
    now: datetime | None = None,
    prefix_fields: bool = True,
) -> list[Submitted]:
    """Validate documents of one type for one partner, each its own interchange, all or none.

    Every document is validated first; problems name the document (``[3].po_number``) unless
    ``prefix_fields`` is off. The control numbers of all interchanges are allocated at once.
    A document whose Idempotency-Key another transaction has just stored raises ``IdempotencyRace``.
    """
    now = now or utcnow()
    loaded = partner_profile(session, partner_id, box)
    profile = loaded.profile
    canonicals = _validated(profile, document_type, submissions, prefix_fields)
    existing = _by_idempotency_key(session, partner_id, document_type, submissions)
    answers: list[Submitted | None] = []
    new: list[OutboundDocument] = []
    for submission, (document, mapped, canonical) in zip(submissions, canonicals, strict=True):
        known = existing.get(submission.idempotency_key) if submission.idempotency_key else None
        if known is not None:
            answers.append(_repeat(known, canonical))
            continue
        document_id = uuid.uuid4()
        row = {
            "id": document_id,
            "transaction_id": None,
            "message_id": None,
            "partner_id": partner_id,
            "direction": Direction.OUTBOUND,
            "document_type": document_type,
            "profile_version": loaded.version,
            "business_reference": primary_reference(document_type, canonical),
            "status": DocumentStatus.PENDING,
            "data": canonical,
            "idempotency_key": submission.idempotency_key,
            "correlation_id": submission.correlation_id,
            "created_at": now,
        }
        answers.append(None)
        new.append(
            OutboundDocument(document_id, document_type, submission.correlation_id, document, row, mapped)
        )
    try:
        made = iter(_generate_or_batch(session, blobs, profile, new, actor, lease, policy, now))
    except IntegrityError as exc:
        if not _idempotency_clash(exc):
            raise
        raise IdempotencyRace("a request with this Idempotency-Key is being answered") from exc
    return [answer if answer is not None else next(made) for answer in answers]


def _idempotency_clash(exc: IntegrityError) -> bool:
    """True when the error is the documents' Idempotency-Key unique key (PostgreSQL names it)."""
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if constraint is not None:
        return bool(constraint == IDEMPOTENCY_CONSTRAINT)
    return "documents.idempotency_key" in str(exc.orig)  # SQLite names the columns


def _validated(
    profile: PartnerProfile, document_type: str, submissions: Sequence[Submission], prefix_fields: bool
) -> list[tuple[CanonicalDocument, MappedSet, dict[str, Any]]]:
    validated: list[tuple[CanonicalDocument, MappedSet, dict[str, Any]]] = []
    problems: list[dict[str, Any]] = []
    for index, submission in enumerate(submissions):
        try:
            document, mapped = validate_and_map(profile, document_type, submission.data)
        except DocumentInvalid as exc:
            if not prefix_fields:
                raise
            problems.extend(
                {**problem, "field": f"[{index}]" + _joined(problem.get("field", "(root)"))}
                for problem in exc.problems
            )
            continue
        validated.append((document, mapped, to_dict(document)))
    keys = [s.idempotency_key for s in submissions if s.idempotency_key]
    if len(keys) != len(set(keys)):
        problems.append({"field": "idempotency_key", "message": "each document needs a key of its own"})
    if problems:
        raise DocumentInvalid(problems)
    return validated


def _joined(field_name: str) -> str:
    return "" if field_name == "(root)" else field_name if field_name.startswith("[") else f".{field_name}"


def _by_idempotency_key(
    session: Session, partner_id: str, document_type: str, submissions: Sequence[Submission]
) -> dict[str | None, Row[Any]]:
    keys = [s.idempotency_key for s in submissions if s.idempotency_key]
    if not keys:
        return {}
    params = {"partner_id": partner_id, "document_type": document_type, "keys": keys}
    return {row.idempotency_key: row for row in run(session, _BY_IDEMPOTENCY_KEY, params)}


def _generate_or_batch(
    session: Session,
    blobs: BlobStore,
    profile: PartnerProfile,
    new: Sequence[OutboundDocument],
    actor: str,
    lease: timedelta,
    policy: RetryPolicy,
    now: datetime,
) -> list[Submitted]:
    if not new:
        return []
    document_type = new[0].document_type
    batching = profile.documents[document_type].batching  # type: ignore[index]
    if batching is not None:
        due = now + timedelta(minutes=batching.minutes)
        return _hold_for_batch(session, profile, new, actor, policy, now, due)
    generated = generate_messages(
        session,
        blobs=blobs,
        profile=profile,
        interchanges=[([document], document.correlation_id) for document in new],
        now=now,
        lease=lease,
        actor=actor,
    )
    return [
        Submitted(
            document.id,
            made.message_id,
            "queued",
            document.correlation_id,
            generated=made,
            delivery_ids=check_document_order(
                session, profile=profile, document_type=document_type, document_id=document.id,
                policy=policy, now=now,
            ),
        )
        for document, made in zip(new, generated, strict=True)
    ]


def _hold_for_batch(
    session: Session,
    profile: PartnerProfile,
    new: Sequence[OutboundDocument],
    actor: str,
    policy: RetryPolicy,
    now: datetime,
    due: datetime,
) -> list[Submitted]:
    """Store the documents pending until their batch is due (``flush_due_batches`` writes them)."""
    rows = [document.row for document in new if document.row is not None]
    references = [r for row in rows for r in document_reference_rows(row["id"], row["data"])]
    insert_tables(session, [(_DOCUMENTS, rows), (_REFERENCES, references)])
    answers = []
    for document, row in zip(new, rows, strict=True):
        append_event(
            session,
            event_type="document.batched",
            actor=actor,
            partner_id=profile.id,
            subject_type="document",
            subject_id=document.id,
            correlation_id=document.correlation_id,
            data={
                "document_type": document.document_type,
                "business_reference": row["business_reference"],
                "batch_due_at": due.isoformat(),
            },
        )
        deliveries = check_document_order(
            session, profile=profile, document_type=document.document_type, document_id=document.id,
            policy=policy, now=now,
        )
        answers.append(
            Submitted(document.id, None, "batched", document.correlation_id, batch_due_at=due,
                      delivery_ids=deliveries)
        )
    return answers


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
    rows = run(
        session, _WAITING_FOR_BATCH, {"partner_id": batch.partner_id, "document_type": batch.document_type,
                                      "limit": limit}
    ).all()
    if not rows:
        return None
    documents = [
        OutboundDocument(row.id, batch.document_type, row.correlation_id, parse_document(row.data))
        for row in rows
    ]
    return generate_messages(
        session,
        blobs=blobs,
        profile=loaded.profile,
        interchanges=[(documents, uuid.uuid4().hex)],
        now=now,
        lease=lease,
        actor="batch",
    )[0]


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
