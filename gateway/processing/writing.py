"""Phase 3 of processing a received message: ONE transaction that writes what it carries.

Lock the message row (a batch: all of its rows in one statement); if it is already processed,
stop. Otherwise run the duplicate checks (:mod:`gateway.processing.duplicate_checks`), write
interchanges, groups, sets, documents, references and deliveries, stage the acks
(:mod:`gateway.processing.acknowledging`), append events, and settle the message and its outbox
entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from gateway.acks.inbound import reconcile_parsed
from gateway.deliveries.service import DOCUMENT_RECEIVED, delivery_row
from gateway.processing.acknowledging import ENVELOPE_STATUS, acknowledgments, note_ack_statuses, store_acks
from gateway.processing.context import PipelineContext
from gateway.processing.duplicate_checks import (
    advisory_locks,
    duplicate_issue,
    duplicate_keys,
    isa_key,
    original_interchange,
    same_content,
)
from gateway.processing.outcome import FINISHED, ProcessOutcome
from gateway.processing.profiles import LoadedProfile
from gateway.processing.publisher import OUTBOX_PROCESS_MESSAGE
from gateway.processing.reading import Parsed, Snapshot
from gateway.processing.references import business_references, primary_reference
from gateway.processing.writer import Arrival, IsaKey, Locked, PendingAcks, Writer, flush_together
from gateway.processing.x12_parse import ParsedInterchange, ParsedX12, describe_issue
from gateway.store.core import run, table_of
from gateway.store.duplicates import InterchangeRef
from gateway.store.enums import (
    AckStatus,
    Direction,
    DocumentStatus,
    EnvelopeStatus,
    MessageStatus,
    OutboxStatus,
    Transport,
)
from gateway.store.events import MessageRef, append_event, append_message_event
from gateway.store.models import (
    Delivery,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    TransactionSet,
)
from gateway.store.types import utcnow
from translators.acks import AckCode, group_counts, interchange_status
from translators.pipeline import TransactionResult

MAX_ERROR_LINES = 50
_ACK_SEVERITY = [
    AckStatus.ACCEPTED,
    AckStatus.ACCEPTED_WITH_ERRORS,
    AckStatus.PARTIALLY_ACCEPTED,
    AckStatus.REJECTED,
]
_MESSAGES = table_of(Message)
_OUTBOX = table_of(OutboxEntry)
_LOCK_MESSAGE = (
    select(
        _MESSAGES.c.status,
        _MESSAGES.c.partner_id,
        _MESSAGES.c.correlation_id,
        _MESSAGES.c.content_sha256,
        _MESSAGES.c.received_at,
        _MESSAGES.c.replay_of_id,
        _MESSAGES.c.ack_status,
    )
    .where(_MESSAGES.c.id == bindparam("message_id"))
    .with_for_update()
)
# A batch locks its messages in one statement, in id order: batches never wait on each other in a circle.
LOCK_MESSAGES = (
    select(_MESSAGES.c.id, *_LOCK_MESSAGE.selected_columns)
    .where(_MESSAGES.c.id.in_(bindparam("message_ids", expanding=True)))
    .order_by(_MESSAGES.c.id)
    .with_for_update()
)
_SETTLE_MESSAGE = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("target_message"))
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        ack_status=bindparam("new_ack_status"),
        is_duplicate=bindparam("new_is_duplicate"),
        duplicate_of_id=bindparam("new_duplicate_of_id"),
        updated_at=bindparam("target_now"),
    )
)
_OUTBOX_DONE = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.message_id == bindparam("target_message"),
        _OUTBOX.c.task_name == OUTBOX_PROCESS_MESSAGE,
        # not IN (…): an expanding parameter cannot go into a batch's executemany
        or_(_OUTBOX.c.status == OutboxStatus.PENDING, _OUTBOX.c.status == OutboxStatus.ENQUEUED),
    )
    .values(status=OutboxStatus.DONE, updated_at=bindparam("target_now"))
)
# PostgreSQL settles the message and its outbox entry in one statement (a data-modifying CTE).
_SETTLE_MESSAGE_AND_OUTBOX = _SETTLE_MESSAGE.add_cte(_OUTBOX_DONE.cte("outbox_done"))


def settle_messages(session: Session, settles: list[dict[str, Any]]) -> None:
    """Write processed messages' outcomes and mark their processing outbox entries done."""
    if not settles:
        return
    if session.get_bind().dialect.name == "postgresql":
        run(session, _SETTLE_MESSAGE_AND_OUTBOX, settles)
        return
    run(session, _SETTLE_MESSAGE, settles)
    run(session, _OUTBOX_DONE, [{"target_message": s["target_message"], "target_now": s["target_now"]}
                                for s in settles])


def mark_outbox_done(session: Session, message_id: uuid.UUID) -> None:
    """Mark a message's pending processing outbox entry done."""
    run(session, _OUTBOX_DONE, {"target_message": message_id, "target_now": utcnow()})


def _hosted_only(profile: LoadedProfile | None) -> bool:
    sftp = profile.profile.transports.sftp if profile is not None else None
    return sftp is not None and sftp.hosted is not None and sftp.remote is None


def begin_write(
    session: Session,
    ctx: PipelineContext,
    snap: Snapshot,
    parsed: Parsed,
    *,
    check_duplicates: bool,
    send_acks: bool,
    locked: Any = None,
    settles: list[dict[str, Any]] | None = None,
    seen_isa: dict[IsaKey, InterchangeRef] | None = None,
    seen_content: dict[tuple[str, str], list[Arrival]] | None = None,
) -> ProcessOutcome | Writer:
    """Phase 3 up to the acks' numbering: a writer for :func:`complete_writes`, or the outcome of a skip.

    A batch passes the message's row, locked already, a list that gathers its settle and its
    duplicate indexes (:func:`~gateway.processing.duplicate_checks.seen_interchanges`,
    :func:`~gateway.processing.duplicate_checks.seen_contents`).
    """
    row = locked if locked is not None else run(session, _LOCK_MESSAGE, {"message_id": snap.id}).one()
    if row.status in FINISHED:
        mark_outbox_done(session, snap.id)
        return ProcessOutcome(snap.id, row.status, skipped=True)
    message = Locked(
        snap.id,
        row.partner_id,
        row.correlation_id,
        row.content_sha256,
        row.received_at,
        row.replay_of_id,
        row.ack_status,
    )
    writer = Writer(session, ctx, snap, message, utcnow(), ProcessOutcome(snap.id, MessageStatus.PROCESSED),
                    settles=settles, seen_isa=seen_isa, seen_content=seen_content)
    writer.outcome.acks_stay_local = snap.transport is Transport.SFTP and _hosted_only(snap.profile)
    check_duplicates = check_duplicates and message.replay_of_id is None
    if check_duplicates:
        advisory_locks(session, duplicate_keys(snap, message.content_sha256, parsed))
        resend_of = same_content(writer)
        if resend_of is not None:
            writer.outcome.is_duplicate, writer.outcome.duplicate_of = True, resend_of
            if parsed.x12 is not None:  # its interchanges are recorded and answered as duplicates
                _write_x12(writer, parsed.x12, check_duplicates=True, send_acks=send_acks,
                           resend_of=resend_of)
            return writer
    if parsed.error is not None:
        writer.errors.append(parsed.error)
    elif parsed.x12 is not None:
        _write_x12(writer, parsed.x12, check_duplicates=check_duplicates, send_acks=send_acks)
    elif parsed.document is not None:
        _add_document(writer, parsed.document, transaction=None, source={"transport": snap.transport.value})
    return writer


def complete_writes(session: Session, begun: Sequence[ProcessOutcome | Writer]) -> list[ProcessOutcome]:
    """Number and store the writers' acks together, then finish each message (its settle and events);
    the outcomes in ``begun``'s order (a skip's as :func:`begin_write` gave it)."""
    writers = [w for w in begun if isinstance(w, Writer)]
    store_acks(session, [w for w in writers if w.pending is not None and w.pending.acks])
    flush_together(session, writers)
    for w in writers:
        if w.pending is not None:
            _after_acks(w, w.pending)
    return [_finish(w) if isinstance(w, Writer) else w for w in begun]


def _after_acks(w: Writer, pending: PendingAcks) -> None:
    """An X12 message's last steps: reconcile the acknowledgments it carries, flag what it duplicates."""
    w.outcome.delivery_ids.extend(_reconcile(w, pending.fresh))
    if pending.duplicates and len(pending.duplicates) == len(pending.parsed.interchanges):
        w.outcome.is_duplicate = True
        w.outcome.duplicate_of = pending.resend_of or pending.duplicates[0]
    if not pending.parsed.interchanges and not pending.parsed.input_issues:
        w.errors.append("input: no X12 interchange found")


def _write_x12(
    w: Writer,
    parsed: ParsedX12,
    *,
    check_duplicates: bool,
    send_acks: bool,
    resend_of: uuid.UUID | None = None,
) -> None:
    """The message's interchanges; with ``resend_of`` (the same bytes came before) each is a duplicate."""
    w.errors.extend(describe_issue(i) for i in parsed.input_issues if i.is_error)
    duplicates: list[uuid.UUID] = []
    fresh: list[ParsedInterchange] = []  # acknowledgments in these reconcile what we sent
    to_acknowledge: list[tuple[ParsedInterchange, dict[str, Any]]] = []
    for position, item in enumerate(parsed.interchanges):
        original = None
        if check_duplicates:
            original = original_interchange(w, item)
        if original is not None or resend_of is not None:
            duplicates.append(original.message_id if original is not None else resend_of or w.message.id)
            item.outcome.issues.append(duplicate_issue(item, duplicates[-1]))
            interchange = _add_interchange(w, item, position, duplicate=True, duplicate_of=original)
            if not _only_acknowledgments(item):  # a TA1 025 answers it; never an ack of an ack
                to_acknowledge.append((item, interchange))
            continue
        interchange = _add_interchange(w, item, position, duplicate=False, duplicate_of=None)
        if w.seen_isa is not None:  # a later message of the batch with this ISA13 is its duplicate
            w.seen_isa.setdefault(isa_key(item), InterchangeRef(interchange["id"], w.message.id))
        _write_groups(w, item, interchange)
        fresh.append(item)
        to_acknowledge.append((item, interchange))
    acks = [(item, acknowledgments(w, item)) for item, _ in to_acknowledge] if send_acks else []
    for (_, (built, _)), (_, interchange_row) in zip(acks, to_acknowledge, strict=False):
        note_ack_statuses(w, interchange_row, built)
    w.pending = PendingAcks(parsed, acks, fresh, duplicates, resend_of)


def _only_acknowledgments(item: ParsedInterchange) -> bool:
    groups = item.outcome.groups
    if not groups:
        return bool(item.result.ta1)
    return all(g.is_functional_ack for g in groups)


def _reconcile(w: Writer, fresh: list[ParsedInterchange]) -> list[uuid.UUID]:
    """Acknowledgments in the message reconcile what we sent (with the ORM message row, loaded only then)."""
    if not any(_carries_acks(item) for item in fresh):
        return []
    message = w.session.get(Message, w.message.id)
    assert message is not None
    delivered = reconcile_parsed(w.session, w.ctx, message, fresh, now=w.now)
    w.message.ack_status = message.ack_status
    w.session.expunge(message)  # its final state is written with the others in _finish
    return delivered


def _carries_acks(item: ParsedInterchange) -> bool:
    return bool(item.result.ta1) or any(
        result.document_type == "functional_acknowledgment" for result in item.sets
    )


def _add_interchange(
    w: Writer,
    item: ParsedInterchange,
    position: int,
    *,
    duplicate: bool,
    duplicate_of: InterchangeRef | None,
) -> dict[str, Any]:
    header = item.outcome.header
    code, _ = interchange_status(item.outcome)
    w.errors.extend(describe_issue(i) for i in item.outcome.issues if i.is_error)
    if code == AckCode.REJECTED:
        w.rejected_sets += len(item.sets)
    row = {
        "id": uuid.uuid4(),
        "message_id": w.message.id,
        "partner_id": w.snap.partner_id,
        "direction": Direction.INBOUND,
        "position": position,
        "sender_qualifier": header.sender_qualifier[:2],
        "sender_id": header.sender_id[:15],
        "receiver_qualifier": header.receiver_qualifier[:2],
        "receiver_id": header.receiver_id[:15],
        "control_number": header.control_number[:9],
        "version": header.version[:5],
        "usage_indicator": header.usage[:1],
        "ack_requested": header.ack_requested.strip() == "1",
        "interchange_date": header.date[:8] or None,
        "status": ENVELOPE_STATUS.get(code, EnvelopeStatus.REJECTED),
        "is_duplicate": duplicate,
        "duplicate_of_id": duplicate_of.id if duplicate_of is not None else None,
        "correlation_id": w.snap.correlation_id,
        "created_at": w.now,
    }
    w.stage(table_of(Interchange), row)
    return row


def _write_groups(w: Writer, item: ParsedInterchange, interchange: dict[str, Any]) -> None:
    rejected_interchange = interchange["status"] is EnvelopeStatus.REJECTED
    by_group: dict[int, list[tuple[TransactionResult, dict[str, Any] | None]]] = {}
    for result, data in zip(item.sets, item.data, strict=True):
        by_group.setdefault(id(result.group), []).append((result, data))
    for g_position, group in enumerate(item.outcome.groups):
        counts = group_counts(group)
        w.errors.extend(describe_issue(i) for i in group.issues if i.is_error)
        header = group.header
        group_row = {
            "id": uuid.uuid4(),
            "interchange_id": interchange["id"],
            "partner_id": w.snap.partner_id,
            "position": g_position,
            "functional_id": header.functional_id[:2],
            "application_sender": header.sender[:15],
            "application_receiver": header.receiver[:15],
            "control_number": header.control_number[:9],
            "version": header.version[:12],
            "status": ENVELOPE_STATUS.get(counts.status, EnvelopeStatus.REJECTED),
            "ack_status": None,
            "correlation_id": w.snap.correlation_id,
            "created_at": w.now,
        }
        w.stage(table_of(FunctionalGroup), group_row)
        w.group_rows[(interchange["id"], group_row["control_number"])] = group_row
        group_ok = not rejected_interchange and not any(i.is_error for i in group.issues)
        for t_position, (result, data) in enumerate(by_group.get(id(header), [])):
            _add_transaction(w, item, interchange, group_row, t_position, result, data if group_ok else None)


def _add_transaction(
    w: Writer,
    item: ParsedInterchange,
    interchange: dict[str, Any],
    group: dict[str, Any],
    position: int,
    result: TransactionResult,
    data: dict[str, Any] | None,
) -> None:
    errors = [i for i in result.issues if i.is_error]
    if errors and interchange["status"] is not EnvelopeStatus.REJECTED:
        w.rejected_sets += 1
        w.errors.extend(describe_issue(i) for i in errors)
    status = (
        EnvelopeStatus.REJECTED
        if errors
        else EnvelopeStatus.ACCEPTED_WITH_ERRORS
        if result.issues
        else EnvelopeStatus.ACCEPTED
    )
    row = {
        "id": uuid.uuid4(),
        "group_id": group["id"],
        "partner_id": w.snap.partner_id,
        "position": position,
        "set_id": result.set_id[:3],
        "control_number": result.control_number[:9],
        "status": status,
        "errors": [i.to_dict() for i in result.issues],
        "correlation_id": w.snap.correlation_id,
        "created_at": w.now,
    }
    w.stage(table_of(TransactionSet), row)
    if data is None or result.document_type is None or result.document_type == "functional_acknowledgment":
        return
    header = item.outcome.header
    source = {
        "transport": w.snap.transport.value,
        "set": result.set_id,
        "interchange_control_number": header.control_number,
        "group_control_number": group["control_number"],
        "transaction_control_number": result.control_number,
        "version": result.group.version,
        "sender": {"qualifier": header.sender_qualifier, "id": header.sender_id},
        "receiver": {"qualifier": header.receiver_qualifier, "id": header.receiver_id},
        "usage": header.usage,
    }
    _add_document(w, data, transaction=row, source=source)


def _add_document(
    w: Writer, data: dict[str, Any], *, transaction: dict[str, Any] | None, source: dict[str, Any]
) -> None:
    document_type = str(data.get("document_type"))
    profile_version = w.snap.profile.version if w.snap.profile else None
    reference = primary_reference(document_type, data)
    document_id = uuid.uuid4()
    w.stage(
        table_of(Document),
        {
            "id": document_id,
            "transaction_id": transaction["id"] if transaction is not None else None,
            "message_id": w.message.id,
            "partner_id": w.snap.partner_id,
            "direction": Direction.INBOUND,
            "document_type": document_type,
            "profile_version": profile_version,
            "business_reference": reference,
            "status": DocumentStatus.RECEIVED,
            "data": data,
            "idempotency_key": None,
            "correlation_id": w.snap.correlation_id,
            "created_at": w.now,
        },
    )
    for qualifier, value in business_references(data):
        reference_row = {"document_id": document_id, "qualifier": qualifier, "value": value}
        w.stage(table_of(DocumentReference), reference_row)
    w.outcome.document_ids.append(document_id)
    payload = {
        "partner_id": w.snap.partner_id,
        "document_type": document_type,
        "document_id": str(document_id),
        "message_id": str(w.message.id),
        "correlation_id": w.snap.correlation_id,
        "business_reference": reference,
        "created_at": w.now.isoformat(),
        "source": {**source, "profile_version": profile_version},
        "data": data,
    }
    policy = w.ctx.retry_policy()
    for endpoint in w.snap.endpoints:
        delivery = delivery_row(
            endpoint_id=endpoint.id,
            event_type=DOCUMENT_RECEIVED,
            subject_id=document_id,
            payload=payload,
            partner_id=w.snap.partner_id,
            document_id=document_id,
            message_id=w.message.id,
            correlation_id=w.snap.correlation_id,
            policy=policy,
            now=w.now,
        )
        w.stage(table_of(Delivery), delivery)
        w.outcome.delivery_ids.append(delivery["id"])


def _finish(w: Writer) -> ProcessOutcome:
    w.flush_staged()
    outcome, message = w.outcome, w.message
    if outcome.is_duplicate:
        status, event_type = MessageStatus.PROCESSED, "message.duplicate"
    elif w.errors and not outcome.document_ids:
        status, event_type = MessageStatus.REJECTED, "message.rejected"
    else:
        status, event_type = MessageStatus.PROCESSED, "message.processed"
    outcome.status = status
    error = None
    if w.errors:
        lines = w.errors[:MAX_ERROR_LINES]
        if len(w.errors) > MAX_ERROR_LINES:
            lines.append(f"… and {len(w.errors) - MAX_ERROR_LINES} more")
        error = outcome.error = "\n".join(lines)[:10_000]
    # Our own acks decide; a message that only carries the partner's acks keeps what reconciling set.
    ack_status = max(w.ack_statuses, key=_ACK_SEVERITY.index) if w.ack_statuses else message.ack_status
    settle = {
        "target_message": message.id,
        "new_status": status,
        "new_error": error,
        "new_ack_status": ack_status,
        "new_is_duplicate": outcome.is_duplicate,
        "new_duplicate_of_id": outcome.duplicate_of,
        "target_now": w.now,
    }
    if w.settles is not None:
        w.settles.append(settle)
    else:
        settle_messages(w.session, [settle])
    ref = MessageRef(message.id, message.partner_id, message.correlation_id)
    append_message_event(
        w.session,
        ref,
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
