"""Send queued outbound messages (generated documents, 997/999/TA1) through the partner's transport.

Idempotent: a message already sent is not sent again. The sends happen outside any
transaction; the receipts (archived) and the new statuses are written afterwards, for a
whole batch of messages in one transaction, together with what the caller's ``after`` hook
records (the outbound documents' status and their ``document.sent`` webhooks). A retryable
failure puts the outbox row back in the queue with a growing delay (the outbox sweep
publishes it then); after ``transport_max_attempts`` or a permanent failure the message
is ``failed`` with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from gateway.archive.blob_store import BlobRef
from gateway.processing.context import PipelineContext
from gateway.processing.profiles import CURRENT_VERSION, ProfileMissing, profile_version
from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.store.blobs import record_blobs
from gateway.store.core import record_json, run, table_of
from gateway.store.enums import Direction, MessageStatus, OutboxStatus
from gateway.store.enums import Transport as TransportName
from gateway.store.events import append_message_event
from gateway.store.models import Message, OutboxEntry, Partner, PartnerProfileVersion
from gateway.store.types import utcnow
from gateway.transports import OutboundMessage, Receipt, Transport, TransportError
from partner_profiles.schema import PartnerProfile

MAX_RETRY_DELAY = 3600.0


@dataclass
class SettledMessage:
    """A message as its send left it: what the ``after`` hook reads."""

    id: uuid.UUID
    partner_id: str | None
    direction: Direction
    status: MessageStatus
    transport: TransportName
    filename: str | None
    correlation_id: str
    error: str | None
    receipt_sha256: str | None
    transport_message_id: str | None = None


AfterSend = Callable[[Session, Sequence[SettledMessage], datetime], dict[uuid.UUID, list[uuid.UUID]]]
"""Runs in the transaction that records the sends' outcomes, with the messages now sent, failed
or skipped; returns, per message, the webhook deliveries it created (``document.sent``, say)."""

_MESSAGES = table_of(Message)
_OUTBOX = table_of(OutboxEntry)
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_PARTNERS = table_of(Partner)
_VERSIONS = table_of(PartnerProfileVersion)
# The messages with their partner's current profile version (the profile itself is cached).
_TO_SEND = (
    select(
        _MESSAGES.c.id,
        _MESSAGES.c.partner_id,
        _MESSAGES.c.status,
        _MESSAGES.c.transport,
        _MESSAGES.c.content_type,
        _MESSAGES.c.filename,
        _MESSAGES.c.correlation_id,
        _MESSAGES.c.content_sha256,
        _PARTNERS.c.current_version,
        _VERSIONS.c.profile_sha256,
    )
    .outerjoin(_PARTNERS, (_PARTNERS.c.id == _MESSAGES.c.partner_id) & _PARTNERS.c.deleted_at.is_(None))
    .outerjoin(_VERSIONS, CURRENT_VERSION)
    .where(_MESSAGES.c.id.in_(_IDS))
)
# What settling a sent message needs of its row (locked, or as the settling UPDATE returns it).
_SETTLED_COLUMNS = (
    _MESSAGES.c.id,
    _MESSAGES.c.partner_id,
    _MESSAGES.c.direction,
    _MESSAGES.c.status,
    _MESSAGES.c.transport,
    _MESSAGES.c.filename,
    _MESSAGES.c.correlation_id,
    _MESSAGES.c.error,
    _MESSAGES.c.receipt_sha256,
    _MESSAGES.c.transport_message_id,
)
_LOCK_SENT = select(*_SETTLED_COLUMNS).where(_MESSAGES.c.id.in_(_IDS)).with_for_update()
_MARK_SENT = (
    update(_MESSAGES)
    .where(_MESSAGES.c.id == bindparam("target_id"))
    .values(
        status=MessageStatus.SENT,
        error=None,
        receipt_sha256=bindparam("new_receipt"),
        transport_message_id=bindparam("new_remote_id"),
        updated_at=bindparam("target_now"),
    )
)
_SENT_OUTBOX_DONE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.message_id.in_(_IDS), _OUTBOX.c.task_name == OUTBOX_SEND_MESSAGE)
    .values(status=OutboxStatus.DONE, updated_at=bindparam("target_now"))
)
# PostgreSQL: every message sent whose row is not settled yet (sent or failed meanwhile) is marked
# sent with its receipt, and its outbox entry done, in one statement from one JSON parameter.
_MARK_ALL_SENT = (
    text(
        "WITH sent AS (SELECT * FROM json_to_recordset(CAST(:rows AS json)) "
        "AS v(id uuid, receipt_sha256 varchar, transport_message_id varchar)), "
        "marked AS (UPDATE messages SET status = :sent, error = NULL, updated_at = :now, "
        "receipt_sha256 = COALESCE(sent.receipt_sha256, messages.receipt_sha256), "
        "transport_message_id = COALESCE(sent.transport_message_id, messages.transport_message_id) "
        "FROM sent WHERE messages.id = sent.id AND messages.status NOT IN (:sent, :failed) "
        f"RETURNING {', '.join(f'messages.{column.name}' for column in _SETTLED_COLUMNS)}), "
        "done AS (UPDATE outbox SET status = :done, updated_at = :now FROM marked "
        "WHERE outbox.message_id = marked.id AND outbox.task_name = :task) "
        "SELECT * FROM marked"
    )
    .bindparams(
        bindparam("sent", MessageStatus.SENT, type_=_MESSAGES.c.status.type),
        bindparam("failed", MessageStatus.FAILED, type_=_MESSAGES.c.status.type),
        bindparam("done", OutboxStatus.DONE, type_=_OUTBOX.c.status.type),
        bindparam("task", OUTBOX_SEND_MESSAGE, type_=_OUTBOX.c.task_name.type),
        bindparam("now", type_=_MESSAGES.c.updated_at.type),
    )
    .columns(*_SETTLED_COLUMNS)
)


@dataclass(frozen=True)
class SendOutcome:
    """What a send did: sent, skipped (already done), will retry, or failed."""

    message_id: uuid.UUID
    status: str
    error: str | None = None
    delivery_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class _Attempt:
    """A send's result before it is recorded."""

    message_id: uuid.UUID
    status: str  # sent | skipped | failed
    receipt: Receipt | None = None
    error: str = ""
    retryable: bool = False


def send_message(
    ctx: PipelineContext,
    message_id: uuid.UUID,
    *,
    transports: dict[str, Transport],
    after: AfterSend | None = None,
) -> SendOutcome:
    """Send one queued outbound message and record the receipt."""
    return send_messages(ctx, [message_id], transports=transports, after=after)[0]


@dataclass(frozen=True)
class SendPlan:
    """What sending one queued message needs: the message, its transport, its bytes, the profile."""

    message: OutboundMessage
    transport: str
    sha256: str
    profile: PartnerProfile


def send_messages(
    ctx: PipelineContext,
    message_ids: Sequence[uuid.UUID],
    *,
    transports: dict[str, Transport],
    after: AfterSend | None = None,
) -> list[SendOutcome]:
    """Send queued outbound messages one after the other; record every outcome in one transaction."""
    with ctx.db.unit_of_work(read_only=True) as session:
        found = {row.id: row for row in run(session, _TO_SEND, {"ids": list(message_ids)})}
        profiles: dict[str, PartnerProfile | ProfileMissing] = {}
        planned = [_plan(ctx, session, found.get(i), i, profiles) for i in message_ids]
    return send_planned(ctx, planned, transports=transports, after=after)


def send_planned(
    ctx: PipelineContext,
    planned: Sequence[SendPlan | _Attempt],
    *,
    transports: dict[str, Transport],
    after: AfterSend | None = None,
) -> list[SendOutcome]:
    """Send messages whose plan the caller already has (it just queued them), then record as above."""
    attempts = [plan if isinstance(plan, _Attempt) else _attempt(ctx, transports, plan) for plan in planned]
    with_receipt = [a for a in attempts if a.status == "sent" and a.receipt is not None and a.receipt.body]
    refs = ctx.blobs.put_many([a.receipt.body for a in with_receipt if a.receipt is not None])
    receipts = {a.message_id: ref for a, ref in zip(with_receipt, refs, strict=True)}
    now = utcnow()
    with ctx.db.unit_of_work() as session:
        record_blobs(session, list(receipts.values()))
        marked = _mark_sent_at_once(session, attempts, receipts, now)
        rest = [a for a in attempts if a.message_id not in marked]
        wanted = [a.message_id for a in rest if a.status != "missing"]
        locked = {
            row.id: _settled(row) for row in (run(session, _LOCK_SENT, {"ids": wanted}) if wanted else [])
        }
        recorded = [
            _record(ctx, session, locked[a.message_id], a, receipts.get(a.message_id), now)
            if a.message_id in locked
            else SendOutcome(a.message_id, "missing")
            for a in rest
        ]
        sent = [locked[o.message_id] for o in recorded if o.status == "sent"]
        outcomes = _in_order(session, attempts, marked, receipts, recorded)
        if sent:  # elsewhere than PostgreSQL: one statement per message, then the outbox
            marks = [
                {"target_id": m.id, "new_receipt": m.receipt_sha256, "new_remote_id": m.transport_message_id,
                 "target_now": now}
                for m in sent
            ]
            run(session, _MARK_SENT, marks)
            run(session, _SENT_OUTBOX_DONE, {"ids": [m.id for m in sent], "target_now": now})
        locked.update(marked)
        settled = [locked[o.message_id] for o in outcomes if o.status in ("sent", "failed", "skipped")]
        if after is not None and settled:
            deliveries = after(session, settled, now)
            outcomes = [replace(o, delivery_ids=tuple(deliveries.get(o.message_id, ()))) for o in outcomes]
    return outcomes


def _in_order(
    session: Session,
    attempts: Sequence[_Attempt],
    marked: dict[uuid.UUID, SettledMessage],
    receipts: dict[uuid.UUID, BlobRef],
    recorded: Sequence[SendOutcome],
) -> list[SendOutcome]:
    """Every attempt's outcome in order: the ones marked at once get their ``message.sent`` event."""
    rest = iter(recorded)
    outcomes = []
    evented: set[uuid.UUID] = set()
    for attempt in attempts:
        if attempt.message_id not in marked:
            outcomes.append(next(rest))
        elif attempt.message_id in evented or attempt.receipt is None:  # the same message twice
            outcomes.append(SendOutcome(attempt.message_id, "skipped"))
        else:
            evented.add(attempt.message_id)
            message = marked[attempt.message_id]
            _sent_event(session, message, attempt.receipt, receipts.get(attempt.message_id))
            outcomes.append(SendOutcome(attempt.message_id, "sent"))
    return outcomes


def _settled(row: Any) -> SettledMessage:
    return SettledMessage(
        row.id,
        row.partner_id,
        row.direction,
        row.status,
        row.transport,
        row.filename,
        row.correlation_id,
        row.error,
        row.receipt_sha256,
        row.transport_message_id,
    )


def _mark_sent_at_once(
    session: Session, attempts: Sequence[_Attempt], receipts: dict[uuid.UUID, BlobRef], now: datetime
) -> dict[uuid.UUID, SettledMessage]:
    """PostgreSQL: the sent messages not settled meanwhile, marked sent in one statement (else none)."""
    rows = [
        {
            "id": a.message_id,
            "receipt_sha256": receipts[a.message_id].sha256 if a.message_id in receipts else None,
            "transport_message_id": a.receipt.remote_id[:500] if a.receipt.remote_id else None,
        }
        for a in attempts
        if a.status == "sent" and a.receipt is not None
    ]
    if not rows or session.get_bind().dialect.name != "postgresql":
        return {}
    marked = run(session, _MARK_ALL_SENT, {"rows": record_json(rows), "now": now})
    return {row.id: _settled(row) for row in marked}


def _plan(
    ctx: PipelineContext,
    session: Session,
    message: Any,
    message_id: uuid.UUID,
    profiles: dict[str, PartnerProfile | ProfileMissing],
) -> _Attempt | SendPlan:
    if message is None or message.partner_id is None:
        return _Attempt(message_id, "missing")
    if message.status in (MessageStatus.SENT, MessageStatus.FAILED):
        return _Attempt(message_id, "skipped")
    if message.partner_id not in profiles:
        try:
            profiles[message.partner_id] = profile_version(
                session, message.partner_id, message.current_version, message.profile_sha256, ctx.box
            ).profile
        except ProfileMissing as exc:
            profiles[message.partner_id] = exc
    profile = profiles[message.partner_id]
    if isinstance(profile, ProfileMissing):
        return _Attempt(message_id, "failed", error=f"failed: {profile}")
    outbound = OutboundMessage(
        str(message.id),
        message.partner_id,
        message.content_type or "application/edi-x12",
        message.filename,
        message.correlation_id,
    )
    return SendPlan(outbound, message.transport.value, message.content_sha256, profile)


def _attempt(ctx: PipelineContext, transports: dict[str, Transport], plan: SendPlan) -> _Attempt:
    message_id = uuid.UUID(plan.message.message_id)
    transport = transports.get(plan.transport)
    if transport is None:
        return _Attempt(message_id, "failed", error=f"no outbound sender for transport {plan.transport!r}")
    with ctx.blobs.open(plan.sha256) as handle:
        payload = handle.read()
    try:
        receipt = transport.send(plan.message, payload, plan.profile)
    except TransportError as exc:
        return _Attempt(message_id, "failed", error=str(exc), retryable=exc.retryable)
    return _Attempt(message_id, "sent", receipt=receipt)


def _record(
    ctx: PipelineContext,
    session: Session,
    message: SettledMessage,
    attempt: _Attempt,
    receipt_blob: BlobRef | None,
    now: datetime,
) -> SendOutcome:
    if message.status in (MessageStatus.SENT, MessageStatus.FAILED):
        if attempt.status == "skipped":
            _finish_outbox(session, message.id, OutboxStatus.DONE)
        return SendOutcome(message.id, "skipped")
    if attempt.status == "sent" and attempt.receipt is not None:
        return _record_sent(session, message, attempt.receipt, receipt_blob)
    return _record_failure(ctx, session, message, attempt.error, retryable=attempt.retryable, now=now)


def _finish_outbox(session: Session, message_id: uuid.UUID, status: OutboxStatus) -> None:
    session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.message_id == message_id,
            OutboxEntry.task_name == OUTBOX_SEND_MESSAGE,
            OutboxEntry.status.in_([OutboxStatus.PENDING, OutboxStatus.ENQUEUED]),
        )
        .values(status=status)
    )


def _record_sent(
    session: Session, message: SettledMessage, receipt: Receipt, blob: BlobRef | None
) -> SendOutcome:
    # The caller writes every sent message and marks their outbox entries done, in one statement each.
    if blob is not None:
        message.receipt_sha256 = blob.sha256
    message.status = MessageStatus.SENT
    message.error = None
    if receipt.remote_id:
        message.transport_message_id = receipt.remote_id[:500]
    _sent_event(session, message, receipt, blob)
    return SendOutcome(message.id, "sent")


def _sent_event(session: Session, message: SettledMessage, receipt: Receipt, blob: BlobRef | None) -> None:
    append_message_event(
        session,
        message,
        event_type="message.sent",
        actor="worker",
        data={
            "transport": message.transport.value,
            "status_code": receipt.status_code,
            "receipt_sha256": blob.sha256 if blob else None,
            "remote_id": receipt.remote_id,
        },
    )


def _record_failure(
    ctx: PipelineContext,
    session: Session,
    message: SettledMessage,
    error: str,
    *,
    retryable: bool,
    now: datetime,
) -> SendOutcome:
    entry = session.scalars(
        select(OutboxEntry)
        .where(OutboxEntry.message_id == message.id, OutboxEntry.task_name == OUTBOX_SEND_MESSAGE)
        .order_by(OutboxEntry.id.desc())
        .limit(1)
    ).first()
    attempts = entry.attempts if entry is not None else 1
    final = not retryable or attempts >= ctx.tuning.transport_max_attempts
    message.error = error[:10_000]
    if final:
        message.status = MessageStatus.FAILED
        if entry is not None:
            entry.status = OutboxStatus.FAILED
            entry.last_error = error[:2000]
    elif entry is not None:
        delay = min(MAX_RETRY_DELAY, ctx.tuning.webhook_backoff_seconds * 2 ** max(attempts - 1, 0))
        entry.status = OutboxStatus.PENDING
        entry.next_attempt_at = now + timedelta(seconds=delay)
        entry.last_error = error[:2000]
    session.execute(
        update(Message)
        .where(Message.id == message.id)
        .values(status=message.status, error=message.error)
        .execution_options(synchronize_session=False)
    )
    append_message_event(
        session,
        message,
        event_type="message.send_failed",
        actor="worker",
        data={"error": error[:2000], "attempt": attempts, "final": final},
    )
    return SendOutcome(message.id, "failed" if final else "retry", error)
