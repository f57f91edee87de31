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
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from gateway.acks.inbound import reconcile_parsed
from gateway.deliveries.service import DOCUMENT_RECEIVED, EndpointRef, delivery_row, subscribed_endpoints
from gateway.processing.context import PipelineContext
from gateway.processing.payloads import PayloadError, PayloadKind, document_from_payload, payload_kind
from gateway.processing.profiles import CURRENT_VERSION, LoadedProfile, ProfileMissing, profile_version
from gateway.processing.publisher import DELIVER, OUTBOX_PROCESS_MESSAGE, OUTBOX_SEND_MESSAGE, SEND_MESSAGE
from gateway.processing.references import business_references, primary_reference
from gateway.processing.sending import SendPlan, send_planned
from gateway.processing.x12_parse import (
    ParsedInterchange,
    ParsedX12,
    describe_issue,
    document_data,
    parse_x12,
)
from gateway.store.blobs import record_blobs
from gateway.store.control_numbers import allocate_many
from gateway.store.core import insert_tables, run, table_of
from gateway.store.duplicates import InterchangeRef, find_duplicate_interchange
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
from gateway.store.events import MessageRef, append_event, append_message_event
from gateway.store.models import (
    Delivery,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    Partner,
    PartnerProfileVersion,
    TransactionSet,
)
from gateway.store.outbox import enqueued_row
from gateway.store.types import utcnow
from gateway.transports import OutboundMessage
from gateway.transports import Transport as Sender
from translators.acks import AckCode, Acknowledgment, build_acknowledgments, group_counts, interchange_status
from translators.errors import Level, TA1Note, X12Issue
from translators.pipeline import TransactionResult

log = logging.getLogger("edigate.processing")
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
    acks_stay_local: bool = False  # the acks go into the partner's hosted mailbox on this host
    ack_plans: list[SendPlan] = field(default_factory=list)  # what sending each ack needs


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
    received_at: datetime | None = None


@dataclass
class _Parsed:
    kind: PayloadKind | None
    x12: ParsedX12 | None = None
    document: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Locked:
    """The message row as phase 3 found it under its lock."""

    id: uuid.UUID
    partner_id: str
    correlation_id: str
    content_sha256: str
    received_at: datetime
    replay_of_id: uuid.UUID | None
    ack_status: AckStatus | None


# Rows are inserted parents first: elsewhere than PostgreSQL a foreign key is checked at once.
_INTERCHANGES = table_of(Interchange)
IsaKey = tuple[str, str, str, str, str]  # sender qualifier and id, receiver qualifier and id, ISA13
Arrival = tuple[datetime, uuid.UUID]  # a message's received_at and id: the order of arrival
_TABLE_ORDER = (
    table_of(Message),
    table_of(Interchange),
    table_of(FunctionalGroup),
    table_of(TransactionSet),
    table_of(Document),
    table_of(DocumentReference),
    table_of(Delivery),
    table_of(OutboxEntry),
)


@dataclass
class _PendingAcks:
    """What an X12 message's write still does once its acks can be numbered (all of a batch's at once)."""

    parsed: ParsedX12
    acks: list[tuple[ParsedInterchange, tuple[list[Acknowledgment], Counter[str]]]]
    fresh: list[ParsedInterchange]  # acknowledgments in these reconcile what we sent
    duplicates: list[uuid.UUID]
    resend_of: uuid.UUID | None


@dataclass
class _Writer:
    """Phase 3 state: the session, the locked message, and the rows staged so far."""

    session: Session
    ctx: PipelineContext
    snap: _Snapshot
    message: _Locked
    now: datetime
    outcome: ProcessOutcome
    errors: list[str] = field(default_factory=list)
    ack_statuses: list[AckStatus] = field(default_factory=list)
    ack_events: list[dict[str, Any]] = field(default_factory=list)
    rejected_sets: int = 0
    group_rows: dict[tuple[uuid.UUID, str], dict[str, Any]] = field(default_factory=dict)
    staged: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    settles: list[dict[str, Any]] | None = None  # a batch settles its messages in one statement at its end
    pending: _PendingAcks | None = None  # an X12 message's write waiting for its acks' numbers
    seen_isa: dict[IsaKey, InterchangeRef] | None = None  # a batch's duplicate index (see seen_interchanges)
    seen_content: dict[tuple[str, str], list[Arrival]] | None = None  # and its resend index (seen_contents)

    def stage(self, table: Any, row: dict[str, Any]) -> None:
        """Queue a row for its table; :meth:`flush_staged` inserts each table's rows at once."""
        self.staged.setdefault(table, []).append(row)

    def flush_staged(self) -> None:
        """Insert every staged row (one statement on PostgreSQL); note the ack outbox entries."""
        batches = [(table, self.staged.pop(table, [])) for table in _TABLE_ORDER]
        has_outbox = bool(batches[-1][1])
        entries = insert_tables(self.session, batches, returning=("id", "message_id") if has_outbox else ())
        self.outcome.send_entries.extend((entry.id, entry.message_id) for entry in entries)

_MESSAGES = table_of(Message)
_OUTBOX = table_of(OutboxEntry)
_PARTNERS = table_of(Partner)
_VERSIONS = table_of(PartnerProfileVersion)
# The message and its partner's current profile version in one round trip.
_READ_MESSAGE_ROWS = (
    select(
        _MESSAGES.c.partner_id,
        _MESSAGES.c.content_sha256,
        _MESSAGES.c.content_type,
        _MESSAGES.c.transport,
        _MESSAGES.c.correlation_id,
        _MESSAGES.c.status,
        _MESSAGES.c.received_at,
        _PARTNERS.c.current_version,
        _VERSIONS.c.profile_sha256,
    )
    .select_from(_MESSAGES)
    .outerjoin(_PARTNERS, (_PARTNERS.c.id == _MESSAGES.c.partner_id) & _PARTNERS.c.deleted_at.is_(None))
    .outerjoin(_VERSIONS, CURRENT_VERSION)
)
_READ_MESSAGE = _READ_MESSAGE_ROWS.where(_MESSAGES.c.id == bindparam("message_id"))
_READ_MESSAGES = _READ_MESSAGE_ROWS.add_columns(_MESSAGES.c.id).where(
    _MESSAGES.c.id.in_(bindparam("message_ids", expanding=True))
)
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
_LOCK_MESSAGES = (
    select(_MESSAGES.c.id, *_LOCK_MESSAGE.selected_columns)
    .where(_MESSAGES.c.id.in_(bindparam("message_ids", expanding=True)))
    .order_by(_MESSAGES.c.id)
    .with_for_update()
)
# What a batch's duplicate index starts from: inbound interchanges with one of its ISA13s.
_SEEN_ISA = (
    select(
        _INTERCHANGES.c.id,
        _INTERCHANGES.c.message_id,
        _INTERCHANGES.c.sender_qualifier,
        _INTERCHANGES.c.sender_id,
        _INTERCHANGES.c.receiver_qualifier,
        _INTERCHANGES.c.receiver_id,
        _INTERCHANGES.c.control_number,
    )
    .where(
        _INTERCHANGES.c.control_number.in_(bindparam("control_numbers", expanding=True)),
        _INTERCHANGES.c.created_at >= bindparam("since"),
        _INTERCHANGES.c.direction == Direction.INBOUND,
        _INTERCHANGES.c.is_duplicate.is_(False),
    )
    .order_by(_INTERCHANGES.c.created_at)
)
_SEEN_CONTENT = select(
    _MESSAGES.c.id, _MESSAGES.c.partner_id, _MESSAGES.c.content_sha256, _MESSAGES.c.received_at
).where(
    _MESSAGES.c.content_sha256.in_(bindparam("hashes", expanding=True)),
    _MESSAGES.c.direction == Direction.INBOUND,
    _MESSAGES.c.is_duplicate.is_(False),
    _MESSAGES.c.replay_of_id.is_(None),
)
_SAME_CONTENT = (
    select(_MESSAGES.c.id)
    .where(
        _MESSAGES.c.content_sha256 == bindparam("content_sha256"),
        _MESSAGES.c.partner_id == bindparam("partner_id"),
        _MESSAGES.c.direction == Direction.INBOUND,
        _MESSAGES.c.is_duplicate.is_(False),
        _MESSAGES.c.replay_of_id.is_(None),
        tuple_(_MESSAGES.c.received_at, _MESSAGES.c.id)
        < tuple_(bindparam("received_at", type_=_MESSAGES.c.received_at.type),
                 bindparam("message_id", type_=_MESSAGES.c.id.type)),
    )
    .order_by(_MESSAGES.c.received_at)
    .limit(1)
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
_ADVISORY_LOCKS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k")


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


def follow_up(ctx: PipelineContext, outcome: ProcessOutcome, *, transports: dict[str, Sender]) -> None:
    """Publish the acks' sends and the webhooks; acks for a hosted mailbox are written here and now."""
    follow_up_many(ctx, [outcome], transports=transports)


def follow_up_many(
    ctx: PipelineContext, outcomes: Sequence[ProcessOutcome], *, transports: dict[str, Sender]
) -> None:
    """The follow-up of several processed messages: hosted-mailbox acks written in one go, one webhook task.

    Writing a file into a mailbox on this host cannot hang on a partner, so it does not need a
    task of its own (and the partner sees its 997 sooner). If it fails, its send task goes out.
    """
    local = [o for o in outcomes if o.acks_stay_local and o.ack_plans]
    if local:
        try:
            send_planned(ctx, [plan for o in local for plan in o.ack_plans], transports=transports)
        except Exception:
            log.exception("writing the acks of %s into the mailbox failed; queueing them",
                          ", ".join(str(o.message_id) for o in local))
            local = []
    written = {id(o) for o in local}
    publish_followups_many(ctx, outcomes, acks_of=[o for o in outcomes if id(o) not in written])


def publish_followups(ctx: PipelineContext, outcome: ProcessOutcome, *, acks: bool = True) -> None:
    """Ring the doorbells for ack sends (unless ``acks`` is False) and webhook deliveries (best effort)."""
    publish_followups_many(ctx, [outcome], acks_of=[outcome] if acks else [])


def publish_followups_many(
    ctx: PipelineContext, outcomes: Sequence[ProcessOutcome], *, acks_of: Sequence[ProcessOutcome]
) -> None:
    """Ring the doorbells for the ack sends of ``acks_of`` and the webhooks of all (in shared tasks)."""
    if ctx.publisher is None:
        return
    for outcome in acks_of:
        for entry_id, ack_id in outcome.send_entries:
            ctx.publisher.publish(SEND_MESSAGE, {**_ack_send_args(ack_id), "outbox_id": entry_id})
    ids = [str(d) for outcome in outcomes for d in outcome.delivery_ids]
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
        row = run(session, _READ_MESSAGE, {"message_id": message_id}).first()
        return _snapshot(session, ctx, message_id, row, {})


def read_many(
    session: Session, ctx: PipelineContext, message_ids: Sequence[uuid.UUID]
) -> tuple[list[_Snapshot], list[uuid.UUID]]:
    """Phase 1 for a batch: its messages in one query; returns the snapshots and the ids not found."""
    rows = {row.id: row for row in run(session, _READ_MESSAGES, {"message_ids": list(message_ids)})}
    endpoints: dict[str | None, list[EndpointRef]] = {}
    snaps, missing = [], []
    for message_id in message_ids:
        try:
            snaps.append(_snapshot(session, ctx, message_id, rows.get(message_id), endpoints))
        except MessageNotFound:
            missing.append(message_id)
    return snaps, missing


def _snapshot(
    session: Session,
    ctx: PipelineContext,
    message_id: uuid.UUID,
    message: Any,
    endpoints_by_name: dict[str | None, list[EndpointRef]],
) -> _Snapshot:
    """A message's snapshot from its row of ``_READ_MESSAGE`` (None: not found)."""
    if message is None:
        raise MessageNotFound(f"message {message_id} not found")
    if message.partner_id is None:
        raise MessageNotFound(f"message {message_id} has no partner")
    profile: LoadedProfile | None = None
    profile_error: str | None = None
    endpoints: list[EndpointRef] = []
    if message.status not in FINISHED:
        try:
            profile = profile_version(
                session, message.partner_id, message.current_version, message.profile_sha256, ctx.box
            )
        except (ProfileMissing, ValueError) as exc:
            profile_error = f"cannot load the partner profile: {exc}"
        webhook_name = profile.profile.erp.webhook if profile else None
        if webhook_name not in endpoints_by_name:
            endpoints_by_name[webhook_name] = subscribed_endpoints(
                session, DOCUMENT_RECEIVED, name=webhook_name
            )
        endpoints = endpoints_by_name[webhook_name]
    return _Snapshot(
        message_id,
        message.partner_id,
        message.content_sha256,
        message.content_type,
        message.transport,
        message.correlation_id,
        message.status,
        profile,
        profile_error,
        endpoints,
        message.received_at,
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


def _mark_outbox_done(session: Session, message_id: uuid.UUID) -> None:
    run(session, _OUTBOX_DONE, {"target_message": message_id, "target_now": utcnow()})


def _advisory_locks(session: Session, keys: list[str]) -> None:
    """Serialise duplicate checks per key across PostgreSQL transactions (SQLite: BEGIN IMMEDIATE).

    Keys this transaction holds already (a batch takes all of its messages' at once) are skipped.
    """
    if not keys or session.get_bind().dialect.name != "postgresql":
        return
    held: set[int] = session.info.setdefault("advisory_keys", set())
    numbers = {int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big", signed=True) for k in keys}
    numbers -= held
    if numbers:
        run(session, _ADVISORY_LOCKS, {"keys": sorted(numbers)})  # in one order everywhere: no deadlock
        held.update(numbers)


def _duplicate_keys(snap: _Snapshot, content_sha256: str, parsed: _Parsed) -> list[str]:
    """The advisory lock keys of a message's duplicate checks: its content and each ISA envelope."""
    interchanges = parsed.x12.interchanges if parsed.x12 is not None else []
    isa_keys = ["isa:" + "|".join(_isa_key(item)) for item in interchanges]
    return [f"content:{snap.partner_id}:{content_sha256}", *isa_keys]


def _hosted_only(profile: LoadedProfile | None) -> bool:
    sftp = profile.profile.transports.sftp if profile is not None else None
    return sftp is not None and sftp.hosted is not None and sftp.remote is None


def _isa_key(parsed: ParsedInterchange) -> IsaKey:
    header = parsed.outcome.header
    return (
        header.sender_qualifier,
        header.sender_id,
        header.receiver_qualifier,
        header.receiver_id,
        header.control_number,
    )


def _write(
    session: Session,
    ctx: PipelineContext,
    snap: _Snapshot,
    parsed: _Parsed,
    *,
    check_duplicates: bool,
    send_acks: bool,
) -> ProcessOutcome:
    """Phase 3 for one message."""
    begun = _begin_write(session, ctx, snap, parsed, check_duplicates=check_duplicates, send_acks=send_acks)
    return begun if isinstance(begun, ProcessOutcome) else _complete_writes(session, [begun])[0]


def _begin_write(
    session: Session,
    ctx: PipelineContext,
    snap: _Snapshot,
    parsed: _Parsed,
    *,
    check_duplicates: bool,
    send_acks: bool,
    locked: Any = None,
    settles: list[dict[str, Any]] | None = None,
    seen_isa: dict[IsaKey, InterchangeRef] | None = None,
    seen_content: dict[tuple[str, str], list[Arrival]] | None = None,
) -> ProcessOutcome | _Writer:
    """Phase 3 up to the acks' numbering: a writer for :func:`_complete_writes`, or the outcome of a skip.

    A batch passes the message's row, locked already, a list that gathers its settle and its
    duplicate indexes (:func:`seen_interchanges`, :func:`seen_contents`).
    """
    row = locked if locked is not None else run(session, _LOCK_MESSAGE, {"message_id": snap.id}).one()
    if row.status in FINISHED:
        _mark_outbox_done(session, snap.id)
        return ProcessOutcome(snap.id, row.status, skipped=True)
    message = _Locked(
        snap.id,
        row.partner_id,
        row.correlation_id,
        row.content_sha256,
        row.received_at,
        row.replay_of_id,
        row.ack_status,
    )
    writer = _Writer(session, ctx, snap, message, utcnow(), ProcessOutcome(snap.id, MessageStatus.PROCESSED),
                     settles=settles, seen_isa=seen_isa, seen_content=seen_content)
    writer.outcome.acks_stay_local = snap.transport is Transport.SFTP and _hosted_only(snap.profile)
    check_duplicates = check_duplicates and message.replay_of_id is None
    if check_duplicates:
        _advisory_locks(session, _duplicate_keys(snap, message.content_sha256, parsed))
        resend_of = _same_content(writer)
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


def _complete_writes(session: Session, writers: Sequence[_Writer]) -> list[ProcessOutcome]:
    """Number and store the writers' acks together, then finish each message (its settle and events)."""
    _store_acks(session, [w for w in writers if w.pending is not None and w.pending.acks])
    _flush_together(session, writers)
    for w in writers:
        if w.pending is not None:
            _after_acks(w, w.pending)
    return [_finish(w) for w in writers]


def _after_acks(w: _Writer, pending: _PendingAcks) -> None:
    """An X12 message's last steps: reconcile the acknowledgments it carries, flag what it duplicates."""
    w.outcome.delivery_ids.extend(_reconcile(w, pending.fresh))
    if pending.duplicates and len(pending.duplicates) == len(pending.parsed.interchanges):
        w.outcome.is_duplicate = True
        w.outcome.duplicate_of = pending.resend_of or pending.duplicates[0]
    if not pending.parsed.interchanges and not pending.parsed.input_issues:
        w.errors.append("input: no X12 interchange found")


def _same_content(w: _Writer) -> uuid.UUID | None:
    """The earlier original message with these exact bytes from this partner, if any."""
    if w.seen_content is not None:
        earlier = w.seen_content.get((w.message.partner_id, w.message.content_sha256), [])
        mine = (w.message.received_at, w.message.id)
        return earlier[0][1] if earlier and earlier[0] < mine else None  # the earliest, if before this one
    original: uuid.UUID | None = run(
        w.session,
        _SAME_CONTENT,
        {
            "content_sha256": w.message.content_sha256,
            "partner_id": w.message.partner_id,
            "received_at": w.message.received_at,
            "message_id": w.message.id,
        },
    ).scalar()
    return original


def _write_x12(
    w: _Writer,
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
            original = _original_interchange(w, item)
        if original is not None or resend_of is not None:
            duplicates.append(original.message_id if original is not None else resend_of or w.message.id)
            item.outcome.issues.append(_duplicate_issue(item, duplicates[-1]))
            interchange = _add_interchange(w, item, position, duplicate=True, duplicate_of=original)
            if not _only_acknowledgments(item):  # a TA1 025 answers it; never an ack of an ack
                to_acknowledge.append((item, interchange))
            continue
        interchange = _add_interchange(w, item, position, duplicate=False, duplicate_of=None)
        if w.seen_isa is not None:  # a later message of the batch with this ISA13 is its duplicate
            w.seen_isa.setdefault(_isa_key(item), InterchangeRef(interchange["id"], w.message.id))
        _write_groups(w, item, interchange)
        fresh.append(item)
        to_acknowledge.append((item, interchange))
    acks = [(item, _acknowledgments(w, item)) for item, _ in to_acknowledge] if send_acks else []
    for (_, (built, _)), (_, interchange_row) in zip(acks, to_acknowledge, strict=False):
        _note_ack_statuses(w, interchange_row, built)
    w.pending = _PendingAcks(parsed, acks, fresh, duplicates, resend_of)


def _original_interchange(w: _Writer, item: ParsedInterchange) -> InterchangeRef | None:
    """The earlier inbound interchange with this one's ids and ISA13 inside the window, if any."""
    if w.seen_isa is not None:
        return w.seen_isa.get(_isa_key(item))
    sender_qualifier, sender_id, receiver_qualifier, receiver_id, control = _isa_key(item)
    return find_duplicate_interchange(
        w.session,
        sender=(sender_qualifier, sender_id),
        receiver=(receiver_qualifier, receiver_id),
        control_number=control,
        window_days=w.ctx.settings.duplicate_window_days,
        now=w.now,
    )


def seen_interchanges(
    session: Session, ctx: PipelineContext, parsed: Sequence[_Parsed]
) -> dict[IsaKey, InterchangeRef]:
    """The earliest inbound interchange inside the window for each ISA key of a batch (one query).

    Taken after the batch's advisory locks, so no other transaction adds one of these keys
    meanwhile; the batch adds its own as it writes them, and each message looks here instead
    of querying.
    """
    keys = {_isa_key(item) for one in parsed if one.x12 is not None for item in one.x12.interchanges}
    if not keys:
        return {}
    since = utcnow() - timedelta(days=ctx.settings.duplicate_window_days)
    rows = run(session, _SEEN_ISA, {"control_numbers": sorted({key[4] for key in keys}), "since": since})
    seen: dict[IsaKey, InterchangeRef] = {}
    for row in rows:  # earliest first
        key = (row.sender_qualifier, row.sender_id, row.receiver_qualifier, row.receiver_id,
               row.control_number)
        if key in keys:
            seen.setdefault(key, InterchangeRef(row.id, row.message_id))
    return seen


def seen_contents(session: Session, locked: Sequence[Any]) -> dict[tuple[str, str], list[Arrival]]:
    """The original inbound messages sharing bytes with a batch's, by partner and hash, earliest first.

    Read after the batch's advisory locks, like :func:`seen_interchanges`; the batch's own
    messages are among them (their duplicate flags are written when the batch settles).
    """
    hashes = sorted({row.content_sha256 for row in locked})
    seen: dict[tuple[str, str], list[Arrival]] = {}
    for row in run(session, _SEEN_CONTENT, {"hashes": hashes}) if hashes else []:
        seen.setdefault((row.partner_id, row.content_sha256), []).append((row.received_at, row.id))
    for arrivals in seen.values():
        arrivals.sort()
    return seen


def _duplicate_issue(item: ParsedInterchange, original_message: uuid.UUID) -> X12Issue:
    """TA105 025: this sender's ISA13 came before (the partner learns it is not processed twice)."""
    header = item.outcome.header
    return X12Issue(
        Level.INTERCHANGE,
        TA1Note.DUPLICATE_CONTROL_NUMBER,
        f"duplicate interchange: ISA13 {header.control_number} from {header.sender_qualifier}/"
        f"{header.sender_id} was received before (message {original_message})",
        offset=header.offset,
        interchange_index=header.index,
        interchange_control=header.control_number,
    )


def _only_acknowledgments(item: ParsedInterchange) -> bool:
    groups = item.outcome.groups
    if not groups:
        return bool(item.result.ta1)
    return all(g.is_functional_ack for g in groups)


def _reconcile(w: _Writer, fresh: list[ParsedInterchange]) -> list[uuid.UUID]:
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
    w: _Writer,
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
        "status": _ENVELOPE_STATUS.get(code, EnvelopeStatus.REJECTED),
        "is_duplicate": duplicate,
        "duplicate_of_id": duplicate_of.id if duplicate_of is not None else None,
        "correlation_id": w.snap.correlation_id,
        "created_at": w.now,
    }
    w.stage(table_of(Interchange), row)
    return row


def _write_groups(w: _Writer, item: ParsedInterchange, interchange: dict[str, Any]) -> None:
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
            "status": _ENVELOPE_STATUS.get(counts.status, EnvelopeStatus.REJECTED),
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
    w: _Writer,
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
    w: _Writer, data: dict[str, Any], *, transaction: dict[str, Any] | None, source: dict[str, Any]
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


def _acknowledgments(w: _Writer, item: ParsedInterchange) -> tuple[list[Acknowledgment], Counter[str]]:
    """The acknowledgments of an interchange built with placeholder numbers, and how many of each kind."""
    profile = w.snap.profile
    if profile is None:
        return [], Counter()
    needed: Counter[str] = Counter()

    def count(kind: str) -> int:
        needed[kind] += 1
        return needed[kind]

    return build_acknowledgments(item.outcome, profile.profile.x12.acknowledgment, now=w.now,
                                 next_control_number=count), needed


def _note_ack_statuses(w: _Writer, interchange: dict[str, Any], acks: list[Acknowledgment]) -> None:
    """The status each ack gives its group (the numbers don't change it), known before any insert."""
    for ack in acks:
        status = _ACK_STATUS.get(ack.status, AckStatus.ACCEPTED)
        w.ack_statuses.append(status)
        group_row = w.group_rows.get((interchange["id"], ack.acknowledged_group or ""))
        if group_row is not None:
            group_row["ack_status"] = status


def _store_acks(session: Session, writers: Sequence[_Writer]) -> None:
    """Number the writers' acknowledgments (one statement per partner) and store each as an outbound message.

    Numbering locks the partner's control counters until commit, so it comes last: what follows
    is the acks' archiving and two statements (their blobs' rows; then every staged row at once).
    """
    needed: dict[str, Counter[str]] = {}
    for w in writers:
        if w.snap.profile is not None and w.pending is not None:
            for _, (_, counts) in w.pending.acks:
                needed.setdefault(w.snap.partner_id, Counter()).update(counts)
    firsts = {
        partner: allocate_many(session, partner_id=partner,
                               counts={_CONTROL_KINDS[kind]: n for kind, n in counts.items()})
        for partner, counts in sorted(needed.items())  # in one order everywhere: no deadlock
        if counts
    }
    handed: dict[str, Counter[str]] = {partner: Counter() for partner in firsts}
    numbered: list[tuple[_Writer, ParsedInterchange, Acknowledgment]] = []
    for w in writers:
        profile, pending = w.snap.profile, w.pending
        if profile is None or pending is None or w.snap.partner_id not in firsts:
            continue
        first, given = firsts[w.snap.partner_id], handed[w.snap.partner_id]

        def next_number(kind: str, first: dict[Any, int] = first, given: Counter[str] = given) -> int:
            given[kind] += 1
            return first[_CONTROL_KINDS[kind]] + given[kind] - 1

        numbered += [
            (w, item, ack)
            for item, (placeholders, _) in pending.acks
            if placeholders
            for ack in build_acknowledgments(
                item.outcome, profile.profile.x12.acknowledgment, now=w.now, next_control_number=next_number
            )
        ]
    if not numbered:
        return
    blobs = writers[0].ctx.blobs.put_many([ack.text.encode("utf-8") for _, _, ack in numbered])
    record_blobs(session, blobs)
    for (w, item, ack), blob in zip(numbered, blobs, strict=True):
        transport = w.snap.transport if w.snap.transport in _SENDING_TRANSPORTS else Transport.HTTP
        _stage_ack(w, item, ack, blob, transport)


def _flush_together(session: Session, writers: Sequence[_Writer]) -> None:
    """Insert every writer's staged rows in one go; each ack's outbox entry goes back to its writer."""
    batches = [(table, [row for w in writers for row in w.staged.pop(table, [])]) for table in _TABLE_ORDER]
    has_outbox = bool(batches[-1][1])
    entries = insert_tables(session, batches, returning=("id", "message_id") if has_outbox else ())
    owners = {ack_id: w for w in writers for ack_id in w.outcome.ack_message_ids}
    for entry in entries:
        owners[entry.message_id].outcome.send_entries.append((entry.id, entry.message_id))


def _ack_send_args(message_id: uuid.UUID) -> dict[str, Any]:
    """The send task's arguments for an ack: it carries no documents, so nothing to settle after it."""
    return {"message_id": str(message_id), "acknowledgment": True}


def _stage_ack(
    w: _Writer, item: ParsedInterchange, ack: Acknowledgment, blob: Any, transport: Transport
) -> None:
    isa13 = f"{ack.interchange_control_number:09d}"
    filename = f"{ack.kind}_{isa13}.x12"
    ack_message_id = uuid.uuid4()
    w.stage(
        table_of(Message),
        {
            "id": ack_message_id,
            "direction": Direction.OUTBOUND,
            "transport": transport,
            "partner_id": w.snap.partner_id,
            "status": MessageStatus.QUEUED,
            "content_sha256": blob.sha256,
            "size": blob.size,
            "content_type": "application/edi-x12",
            "filename": filename,
            "correlation_id": w.snap.correlation_id,
            "received_at": w.now,
            "updated_at": w.now,
        },
    )
    header = item.outcome.header
    w.stage(
        table_of(Interchange),
        {
            "id": uuid.uuid4(),
            "message_id": ack_message_id,
            "partner_id": w.snap.partner_id,
            "direction": Direction.OUTBOUND,
            "position": 0,
            "sender_qualifier": header.receiver_qualifier[:2],
            "sender_id": header.receiver_id[:15],
            "receiver_qualifier": header.sender_qualifier[:2],
            "receiver_id": header.sender_id[:15],
            "control_number": isa13,
            "version": header.version[:5],
            "usage_indicator": header.usage[:1] or "P",
            "ack_requested": False,
            "interchange_date": w.now.strftime("%y%m%d"),
            "status": _ENVELOPE_STATUS.get(ack.status, EnvelopeStatus.ACCEPTED),
            "is_duplicate": False,
            "duplicate_of_id": None,
            "correlation_id": w.snap.correlation_id,
            "created_at": w.now,
        },
    )
    w.stage(
        _OUTBOX,
        enqueued_row(OUTBOX_SEND_MESSAGE, ack_message_id, _ack_send_args(ack_message_id),
                     now=w.now, lease=w.ctx.lease),
    )
    w.outcome.ack_message_ids.append(ack_message_id)
    if w.snap.profile is not None:
        outbound = OutboundMessage(
            str(ack_message_id), w.snap.partner_id, "application/edi-x12", filename, w.snap.correlation_id
        )
        w.outcome.ack_plans.append(SendPlan(outbound, transport.value, blob.sha256, w.snap.profile.profile))
    w.ack_events.append(
        {
            "message_id": ack_message_id,
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
