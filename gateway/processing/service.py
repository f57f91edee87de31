"""``process_message``: an archived inbound message → envelope rows, documents, acks, deliveries.

Three phases keep transactions short and make the step idempotent:

1. read (no locks): the message, the partner's current profile, the subscribed endpoints;
2. parse (no transaction): the archived blob is streamed through the translators once;
3. write (ONE transaction): lock the message row; if it is already processed, stop. Otherwise
   run the duplicate checks, write interchanges, groups, sets, documents, references and
   deliveries, allocate control numbers and store the 997/999/TA1 as outbound messages (blobs
   archived first), append events, mark the outbox done and the message processed.

A crash anywhere rolls phase 3 back completely, so a re-run starts clean: never a second
document, a second delivery (webhook ids are derived from document and endpoint) or a second
control number. Follow-up work (sending acks, delivering webhooks) is published after commit;
the sweeps cover a lost publish.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.orm import Session

from gateway.acks.inbound import reconcile_parsed
from gateway.deliveries.service import DOCUMENT_RECEIVED, EndpointRef, create_delivery, subscribed_endpoints
from gateway.processing.context import PipelineContext
from gateway.processing.payloads import PayloadError, PayloadKind, document_from_payload, payload_kind
from gateway.processing.profiles import LoadedProfile, ProfileMissing, load_profile
from gateway.processing.publisher import DELIVER, OUTBOX_PROCESS_MESSAGE, OUTBOX_SEND_MESSAGE, SEND_MESSAGE
from gateway.processing.references import business_references, primary_reference
from gateway.processing.x12_parse import (
    ParsedInterchange,
    ParsedX12,
    describe_issue,
    document_data,
    parse_x12,
)
from gateway.store.blobs import record_blob
from gateway.store.control_numbers import allocate_many
from gateway.store.duplicates import find_duplicate_interchange
from gateway.store.enums import (
    AckStatus,
    ControlNumberKind,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    OutboxStatus,
    Transport,
)
from gateway.store.events import append_event, append_message_event
from gateway.store.models import (
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    TransactionSet,
)
from gateway.store.outbox import add_outbox_entry
from gateway.store.types import utcnow
from translators.acks import AckCode, Acknowledgment, build_acknowledgments, group_counts, interchange_status
from translators.pipeline import TransactionResult

FINISHED = frozenset({MessageStatus.PROCESSED, MessageStatus.REJECTED, MessageStatus.FAILED})
MAX_ERROR_LINES = 50
DELIVER_BATCH = 50
_CONTROL_KINDS = {
    "interchange": ControlNumberKind.ISA13,
    "group": ControlNumberKind.GS06,
    "transaction": ControlNumberKind.ST02,
}
_ENVELOPE_STATUS = {
    AckCode.ACCEPTED: EnvelopeStatus.ACCEPTED,
    AckCode.ACCEPTED_WITH_ERRORS: EnvelopeStatus.ACCEPTED_WITH_ERRORS,
    AckCode.PARTIALLY_ACCEPTED: EnvelopeStatus.PARTIALLY_ACCEPTED,
    AckCode.REJECTED: EnvelopeStatus.REJECTED,
}
_ACK_STATUS = {
    AckCode.ACCEPTED: AckStatus.ACCEPTED,
    AckCode.ACCEPTED_WITH_ERRORS: AckStatus.ACCEPTED_WITH_ERRORS,
    AckCode.PARTIALLY_ACCEPTED: AckStatus.PARTIALLY_ACCEPTED,
    AckCode.REJECTED: AckStatus.REJECTED,
}
_ACK_SEVERITY = [
    AckStatus.ACCEPTED,
    AckStatus.ACCEPTED_WITH_ERRORS,
    AckStatus.PARTIALLY_ACCEPTED,
    AckStatus.REJECTED,
]
_SENDING_TRANSPORTS = frozenset({Transport.AS2, Transport.SFTP, Transport.HTTP})


class MessageNotFound(LookupError):
    """No message with that id."""


@dataclass
class ProcessOutcome:
    """What one run of ``process_message`` did."""

    message_id: uuid.UUID
    status: MessageStatus
    skipped: bool = False
    is_duplicate: bool = False
    duplicate_of: uuid.UUID | None = None
    document_ids: list[uuid.UUID] = field(default_factory=list)
    ack_message_ids: list[uuid.UUID] = field(default_factory=list)
    delivery_ids: list[uuid.UUID] = field(default_factory=list)
    send_entries: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class _Snapshot:
    id: uuid.UUID
    partner_id: str
    sha256: str
    content_type: str | None
    transport: Transport
    correlation_id: str
    status: MessageStatus
    profile: LoadedProfile | None
    profile_error: str | None
    endpoints: list[EndpointRef]


@dataclass
class _Parsed:
    kind: PayloadKind | None
    x12: ParsedX12 | None = None
    document: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Writer:
    """Phase 3 state: the session, the message, and what has been written so far."""

    session: Session
    ctx: PipelineContext
    snap: _Snapshot
    message: Message
    now: datetime
    outcome: ProcessOutcome
    errors: list[str] = field(default_factory=list)
    ack_statuses: list[AckStatus] = field(default_factory=list)
    ack_events: list[dict[str, Any]] = field(default_factory=list)
    rejected_sets: int = 0
    group_rows: dict[tuple[uuid.UUID, str], FunctionalGroup] = field(default_factory=dict)
    staged: dict[int, list[Any]] = field(default_factory=dict)

    def stage(self, level: int, row: Any) -> None:
        """Queue a row for insertion at its level (0 interchanges … 4 references and deliveries)."""
        self.staged.setdefault(level, []).append(row)

    def flush_staged(self) -> None:
        """Insert the staged rows level by level: parents before children, one batch per level."""
        for level in sorted(self.staged):
            self.session.add_all(self.staged[level])
            self.session.flush()
        self.staged.clear()


def process_message(
    ctx: PipelineContext,
    message_id: uuid.UUID,
    *,
    check_duplicates: bool = True,
    send_acks: bool = True,
    publish: bool = True,
) -> ProcessOutcome:
    """Process one received message (idempotent) and publish its follow-up work."""
    snap = _read(ctx, message_id)
    if snap.status in FINISHED:
        _finish_outbox(ctx, message_id)
        return ProcessOutcome(message_id, snap.status, skipped=True)
    parsed = _parse(ctx, snap)
    with ctx.db.unit_of_work() as session:
        outcome = _write(session, ctx, snap, parsed, check_duplicates=check_duplicates, send_acks=send_acks)
    if publish:
        publish_followups(ctx, outcome)
    return outcome


def publish_followups(ctx: PipelineContext, outcome: ProcessOutcome) -> None:
    """Ring the doorbells for ack sends and webhook deliveries (best effort)."""
    if ctx.publisher is None:
        return
    for entry_id, ack_id in outcome.send_entries:
        ctx.publisher.publish(SEND_MESSAGE, {"message_id": str(ack_id), "outbox_id": entry_id})
    ids = [str(d) for d in outcome.delivery_ids]
    for start in range(0, len(ids), DELIVER_BATCH):
        ctx.publisher.publish(DELIVER, {"delivery_ids": ids[start : start + DELIVER_BATCH]})


def fail_message(ctx: PipelineContext, message_id: uuid.UUID, error: str) -> None:
    """Give up on a message after its retries: status failed, error kept, outbox entry failed."""
    with ctx.db.unit_of_work() as session:
        message = session.get(Message, message_id)
        if message is None or message.status in FINISHED:
            return
        message.status = MessageStatus.FAILED
        message.error = error[:10_000]
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.message_id == message_id,
                OutboxEntry.task_name == OUTBOX_PROCESS_MESSAGE,
                OutboxEntry.status.in_([OutboxStatus.PENDING, OutboxStatus.ENQUEUED]),
            )
            .values(status=OutboxStatus.FAILED, last_error=error[:2000])
        )
        append_message_event(
            session,
            message,
            event_type="message.failed",
            actor="worker",
            data={"error": error[:2000]},
        )


# --- phase 1 -------------------------------------------------------------------------------


def _read(ctx: PipelineContext, message_id: uuid.UUID) -> _Snapshot:
    with ctx.db.unit_of_work(read_only=True) as session:
        message = session.get(Message, message_id)
        if message is None:
            raise MessageNotFound(f"message {message_id} not found")
        if message.partner_id is None:
            raise MessageNotFound(f"message {message_id} has no partner")
        profile: LoadedProfile | None = None
        profile_error: str | None = None
        endpoints: list[EndpointRef] = []
        if message.status not in FINISHED:
            try:
                profile = load_profile(session, message.partner_id, ctx.box)
            except (ProfileMissing, ValueError) as exc:
                profile_error = f"cannot load the partner profile: {exc}"
            webhook_name = profile.profile.erp.webhook if profile else None
            endpoints = subscribed_endpoints(session, DOCUMENT_RECEIVED, name=webhook_name)
        return _Snapshot(
            message.id,
            message.partner_id,
            message.content_sha256,
            message.content_type,
            message.transport,
            message.correlation_id,
            message.status,
            profile,
            profile_error,
            endpoints,
        )


# --- phase 2 -------------------------------------------------------------------------------


def _parse(ctx: PipelineContext, snap: _Snapshot) -> _Parsed:
    kind = payload_kind(snap.content_type)
    if snap.profile is None:
        return _Parsed(kind, error=snap.profile_error or "no partner profile")
    if kind is None:
        return _Parsed(kind, error=f"unsupported content type {snap.content_type!r}")
    if kind == "x12":
        return _Parsed(kind, x12=parse_x12(ctx.blobs, snap.sha256, snap.profile.profile))
    with ctx.blobs.open(snap.sha256) as handle:
        payload = handle.read()
    try:
        document = document_from_payload(kind, payload, snap.profile.profile)
    except PayloadError as exc:
        return _Parsed(kind, error=str(exc))
    return _Parsed(kind, document=document_data(document))


# --- phase 3 -------------------------------------------------------------------------------


def _finish_outbox(ctx: PipelineContext, message_id: uuid.UUID) -> None:
    with ctx.db.unit_of_work() as session:
        _mark_outbox_done(session, message_id)


def _mark_outbox_done(session: Session, message_id: uuid.UUID) -> None:
    session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.message_id == message_id,
            OutboxEntry.task_name == OUTBOX_PROCESS_MESSAGE,
            OutboxEntry.status.in_([OutboxStatus.PENDING, OutboxStatus.ENQUEUED]),
        )
        .values(status=OutboxStatus.DONE)
    )


def _advisory_lock(session: Session, key: str) -> None:
    """Serialise duplicate checks for one key across PostgreSQL transactions (SQLite: BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": number})


def _write(
    session: Session,
    ctx: PipelineContext,
    snap: _Snapshot,
    parsed: _Parsed,
    *,
    check_duplicates: bool,
    send_acks: bool,
) -> ProcessOutcome:
    message = session.execute(
        select(Message)
        .where(Message.id == snap.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if message.status in FINISHED:
        _mark_outbox_done(session, message.id)
        return ProcessOutcome(message.id, message.status, skipped=True)
    writer = _Writer(
        session, ctx, snap, message, utcnow(), ProcessOutcome(message.id, MessageStatus.PROCESSED)
    )
    check_duplicates = check_duplicates and message.replay_of_id is None
    if check_duplicates and _flag_duplicate_content(writer):
        return _finish(writer)
    if parsed.error is not None:
        writer.errors.append(parsed.error)
    elif parsed.x12 is not None:
        _write_x12(writer, parsed.x12, check_duplicates=check_duplicates, send_acks=send_acks)
    elif parsed.document is not None:
        _add_document(writer, parsed.document, transaction=None, source={"transport": snap.transport.value})
    return _finish(writer)


def _flag_duplicate_content(w: _Writer) -> bool:
    _advisory_lock(w.session, f"content:{w.snap.partner_id}:{w.message.content_sha256}")
    original = w.session.scalars(
        select(Message)
        .where(
            Message.content_sha256 == w.message.content_sha256,
            Message.partner_id == w.message.partner_id,
            Message.direction == Direction.INBOUND,
            Message.is_duplicate.is_(False),
            Message.replay_of_id.is_(None),
            tuple_(Message.received_at, Message.id) < tuple_(w.message.received_at, w.message.id),
        )
        .order_by(Message.received_at)
        .limit(1)
    ).first()
    if original is None:
        return False
    w.message.is_duplicate = True
    w.message.duplicate_of_id = original.id
    w.outcome.is_duplicate = True
    w.outcome.duplicate_of = original.id
    return True


def _write_x12(w: _Writer, parsed: ParsedX12, *, check_duplicates: bool, send_acks: bool) -> None:
    w.errors.extend(describe_issue(i) for i in parsed.input_issues if i.is_error)
    duplicates: list[uuid.UUID] = []
    fresh: list[ParsedInterchange] = []  # acknowledgments in these reconcile what we sent
    to_acknowledge: list[tuple[ParsedInterchange, Interchange]] = []
    for position, item in enumerate(parsed.interchanges):
        header = item.outcome.header
        original = None
        if check_duplicates:
            key = (
                header.sender_qualifier,
                header.sender_id,
                header.receiver_qualifier,
                header.receiver_id,
                header.control_number,
            )
            _advisory_lock(w.session, "isa:" + "|".join(key))
            original = find_duplicate_interchange(
                w.session,
                sender=(header.sender_qualifier, header.sender_id),
                receiver=(header.receiver_qualifier, header.receiver_id),
                control_number=header.control_number,
                window_days=w.ctx.settings.duplicate_window_days,
                now=w.now,
            )
        interchange = _add_interchange(w, item, position, duplicate_of=original)
        if original is not None:
            duplicates.append(original.message_id)
            continue
        _write_groups(w, item, interchange)
        fresh.append(item)
        to_acknowledge.append((item, interchange))
    # Numbering an ack locks the partner's control counters until commit, and every message of
    # that partner waits on the lock: write everything else first so the lock is held briefly.
    w.flush_staged()
    if send_acks:
        for item, interchange in to_acknowledge:
            _store_acks(w, item, interchange)
    w.outcome.delivery_ids.extend(reconcile_parsed(w.session, w.ctx, w.message, fresh, now=w.now))
    if duplicates and len(duplicates) == len(parsed.interchanges):
        w.message.is_duplicate = True
        w.message.duplicate_of_id = duplicates[0]
        w.outcome.is_duplicate = True
        w.outcome.duplicate_of = duplicates[0]
    if not parsed.interchanges and not parsed.input_issues:
        w.errors.append("input: no X12 interchange found")


def _add_interchange(
    w: _Writer, item: ParsedInterchange, position: int, *, duplicate_of: Interchange | None
) -> Interchange:
    header = item.outcome.header
    code, _ = interchange_status(item.outcome)
    w.errors.extend(describe_issue(i) for i in item.outcome.issues if i.is_error)
    if code == AckCode.REJECTED:
        w.rejected_sets += len(item.sets)
    row = Interchange(
        id=uuid.uuid4(),
        message_id=w.message.id,
        partner_id=w.snap.partner_id,
        direction=Direction.INBOUND,
        position=position,
        sender_qualifier=header.sender_qualifier[:2],
        sender_id=header.sender_id[:15],
        receiver_qualifier=header.receiver_qualifier[:2],
        receiver_id=header.receiver_id[:15],
        control_number=header.control_number[:9],
        version=header.version[:5],
        usage_indicator=header.usage[:1],
        ack_requested=header.ack_requested.strip() == "1",
        interchange_date=header.date[:8] or None,
        status=_ENVELOPE_STATUS.get(code, EnvelopeStatus.REJECTED),
        is_duplicate=duplicate_of is not None,
        duplicate_of_id=duplicate_of.id if duplicate_of is not None else None,
        correlation_id=w.snap.correlation_id,
        created_at=w.now,
    )
    w.stage(0, row)
    return row


def _write_groups(w: _Writer, item: ParsedInterchange, interchange: Interchange) -> None:
    rejected_interchange = interchange.status is EnvelopeStatus.REJECTED
    by_group: dict[int, list[tuple[TransactionResult, dict[str, Any] | None]]] = {}
    for result, data in zip(item.sets, item.data, strict=True):
        by_group.setdefault(id(result.group), []).append((result, data))
    for g_position, group in enumerate(item.outcome.groups):
        counts = group_counts(group)
        w.errors.extend(describe_issue(i) for i in group.issues if i.is_error)
        header = group.header
        group_row = FunctionalGroup(
            id=uuid.uuid4(),
            interchange_id=interchange.id,
            partner_id=w.snap.partner_id,
            position=g_position,
            functional_id=header.functional_id[:2],
            application_sender=header.sender[:15],
            application_receiver=header.receiver[:15],
            control_number=header.control_number[:9],
            version=header.version[:12],
            status=_ENVELOPE_STATUS.get(counts.status, EnvelopeStatus.REJECTED),
            correlation_id=w.snap.correlation_id,
            created_at=w.now,
        )
        w.stage(1, group_row)
        w.group_rows[(interchange.id, group_row.control_number)] = group_row
        group_ok = not rejected_interchange and not any(i.is_error for i in group.issues)
        for t_position, (result, data) in enumerate(by_group.get(id(header), [])):
            _add_transaction(w, item, interchange, group_row, t_position, result, data if group_ok else None)


def _add_transaction(
    w: _Writer,
    item: ParsedInterchange,
    interchange: Interchange,
    group: FunctionalGroup,
    position: int,
    result: TransactionResult,
    data: dict[str, Any] | None,
) -> None:
    errors = [i for i in result.issues if i.is_error]
    if errors and interchange.status is not EnvelopeStatus.REJECTED:
        w.rejected_sets += 1
        w.errors.extend(describe_issue(i) for i in errors)
    status = (
        EnvelopeStatus.REJECTED
        if errors
        else EnvelopeStatus.ACCEPTED_WITH_ERRORS
        if result.issues
        else EnvelopeStatus.ACCEPTED
    )
    row = TransactionSet(
        id=uuid.uuid4(),
        group_id=group.id,
        partner_id=w.snap.partner_id,
        position=position,
        set_id=result.set_id[:3],
        control_number=result.control_number[:9],
        status=status,
        errors=[i.to_dict() for i in result.issues],
        correlation_id=w.snap.correlation_id,
        created_at=w.now,
    )
    w.stage(2, row)
    if data is None or result.document_type is None or result.document_type == "functional_acknowledgment":
        return
    header = item.outcome.header
    source = {
        "transport": w.snap.transport.value,
        "set": result.set_id,
        "interchange_control_number": header.control_number,
        "group_control_number": group.control_number,
        "transaction_control_number": result.control_number,
        "version": result.group.version,
        "sender": {"qualifier": header.sender_qualifier, "id": header.sender_id},
        "receiver": {"qualifier": header.receiver_qualifier, "id": header.receiver_id},
        "usage": header.usage,
    }
    _add_document(w, data, transaction=row, source=source)


def _add_document(
    w: _Writer, data: dict[str, Any], *, transaction: TransactionSet | None, source: dict[str, Any]
) -> None:
    document_type = str(data.get("document_type"))
    profile_version = w.snap.profile.version if w.snap.profile else None
    reference = primary_reference(document_type, data)
    document = Document(
        id=uuid.uuid4(),
        transaction_id=transaction.id if transaction is not None else None,
        message_id=w.message.id,
        partner_id=w.snap.partner_id,
        direction=Direction.INBOUND,
        document_type=document_type,
        profile_version=profile_version,
        business_reference=reference,
        status=DocumentStatus.RECEIVED,
        data=data,
        correlation_id=w.snap.correlation_id,
        created_at=w.now,
    )
    w.stage(3, document)
    for qualifier, value in business_references(data):
        w.stage(4, DocumentReference(document_id=document.id, qualifier=qualifier, value=value))
    w.outcome.document_ids.append(document.id)
    payload = {
        "partner_id": w.snap.partner_id,
        "document_type": document_type,
        "document_id": str(document.id),
        "message_id": str(w.message.id),
        "correlation_id": w.snap.correlation_id,
        "business_reference": reference,
        "created_at": w.now.isoformat(),
        "source": {**source, "profile_version": profile_version},
        "data": data,
    }
    policy = w.ctx.retry_policy()
    for endpoint in w.snap.endpoints:
        delivery = create_delivery(
            w.session,
            endpoint_id=endpoint.id,
            event_type=DOCUMENT_RECEIVED,
            subject_id=document.id,
            payload=payload,
            partner_id=w.snap.partner_id,
            document_id=document.id,
            message_id=w.message.id,
            correlation_id=w.snap.correlation_id,
            policy=policy,
            now=w.now,
            check_existing=False,
            add=False,
        )
        w.stage(4, delivery)
        w.outcome.delivery_ids.append(delivery.id)


def _store_acks(w: _Writer, item: ParsedInterchange, interchange: Interchange) -> None:
    profile = w.snap.profile
    if profile is None:
        return
    ack_settings = profile.profile.x12.acknowledgment
    # A dry run counts the numbers each kind needs, so that one statement allocates them all
    # (it takes the partner's counter lock, held to commit: the last thing this unit does).
    needed: Counter[str] = Counter()

    def count(kind: str) -> int:
        needed[kind] += 1
        return needed[kind]

    if not build_acknowledgments(item.outcome, ack_settings, now=w.now, next_control_number=count):
        return
    firsts = allocate_many(
        w.session,
        partner_id=w.snap.partner_id,
        counts={_CONTROL_KINDS[kind]: n for kind, n in needed.items()},
    )
    handed: Counter[str] = Counter()

    def next_number(kind: str) -> int:
        handed[kind] += 1
        return firsts[_CONTROL_KINDS[kind]] + handed[kind] - 1

    for ack in build_acknowledgments(item.outcome, ack_settings, now=w.now, next_control_number=next_number):
        _store_ack(w, item, interchange, ack)


def _store_ack(w: _Writer, item: ParsedInterchange, interchange: Interchange, ack: Acknowledgment) -> None:
    blob = w.ctx.blobs.put_bytes(ack.text.encode("utf-8"))
    record_blob(w.session, blob)
    transport = w.snap.transport if w.snap.transport in _SENDING_TRANSPORTS else Transport.HTTP
    isa13 = f"{ack.interchange_control_number:09d}"
    ack_message = Message(
        id=uuid.uuid4(),
        direction=Direction.OUTBOUND,
        transport=transport,
        partner_id=w.snap.partner_id,
        status=MessageStatus.QUEUED,
        content_sha256=blob.sha256,
        size=blob.size,
        content_type="application/edi-x12",
        filename=f"{ack.kind}_{isa13}.x12",
        correlation_id=w.snap.correlation_id,
        received_at=w.now,
    )
    w.session.add(ack_message)
    header = item.outcome.header
    w.session.add(
        Interchange(
            id=uuid.uuid4(),
            message_id=ack_message.id,
            partner_id=w.snap.partner_id,
            direction=Direction.OUTBOUND,
            position=0,
            sender_qualifier=header.receiver_qualifier[:2],
            sender_id=header.receiver_id[:15],
            receiver_qualifier=header.sender_qualifier[:2],
            receiver_id=header.sender_id[:15],
            control_number=isa13,
            version=header.version[:5],
            usage_indicator=header.usage[:1] or "P",
            ack_requested=False,
            interchange_date=w.now.strftime("%y%m%d"),
            status=_ENVELOPE_STATUS.get(ack.status, EnvelopeStatus.ACCEPTED),
            correlation_id=w.snap.correlation_id,
            created_at=w.now,
        )
    )
    w.session.flush()
    entry = add_outbox_entry(
        w.session,
        task_name=OUTBOX_SEND_MESSAGE,
        message_id=ack_message.id,
        task_args={"message_id": str(ack_message.id)},
    )
    entry.status = OutboxStatus.ENQUEUED
    entry.attempts = 1
    entry.next_attempt_at = w.now + w.ctx.lease
    status = _ACK_STATUS.get(ack.status, AckStatus.ACCEPTED)
    w.ack_statuses.append(status)
    group_row = w.group_rows.get((interchange.id, ack.acknowledged_group or ""))
    if group_row is not None:
        group_row.ack_status = status
    w.outcome.ack_message_ids.append(ack_message.id)
    w.outcome.send_entries.append((entry.id, ack_message.id))
    w.ack_events.append(
        {
            "message_id": ack_message.id,
            "kind": ack.kind,
            "status": ack.status,
            "interchange_control_number": isa13,
            "acknowledged_interchange": ack.acknowledged_interchange,
            "acknowledged_group": ack.acknowledged_group,
        }
    )


def _finish(w: _Writer) -> ProcessOutcome:
    w.flush_staged()
    outcome, message = w.outcome, w.message
    if outcome.is_duplicate:
        status, event_type = MessageStatus.PROCESSED, "message.duplicate"
    elif w.errors and not outcome.document_ids:
        status, event_type = MessageStatus.REJECTED, "message.rejected"
    else:
        status, event_type = MessageStatus.PROCESSED, "message.processed"
    outcome.status = status
    message.status = status
    if w.errors:
        lines = w.errors[:MAX_ERROR_LINES]
        if len(w.errors) > MAX_ERROR_LINES:
            lines.append(f"… and {len(w.errors) - MAX_ERROR_LINES} more")
        message.error = "\n".join(lines)[:10_000]
        outcome.error = message.error
    if w.ack_statuses:
        message.ack_status = max(w.ack_statuses, key=_ACK_SEVERITY.index)
    _mark_outbox_done(w.session, message.id)
    append_message_event(
        w.session,
        message,
        event_type=event_type,
        actor="worker",
        data={
            "documents": len(outcome.document_ids),
            "document_ids": [str(d) for d in outcome.document_ids[:100]],
            "rejected_sets": w.rejected_sets,
            "deliveries": len(outcome.delivery_ids),
            "duplicate_of": str(outcome.duplicate_of) if outcome.duplicate_of else None,
            "acknowledgments": [{**a, "message_id": str(a["message_id"])} for a in w.ack_events],
            "errors": w.errors[:5],
        },
    )
    for ack in w.ack_events:
        append_event(
            w.session,
            event_type="message.queued",
            actor="worker",
            partner_id=w.snap.partner_id,
            message_id=ack["message_id"],
            subject_type="message",
            subject_id=ack["message_id"],
            correlation_id=w.snap.correlation_id,
            data={
                "acknowledges": str(message.id),
                "kind": ack["kind"],
                "status": ack["status"],
                "interchange_control_number": ack["interchange_control_number"],
            },
        )
    return outcome
