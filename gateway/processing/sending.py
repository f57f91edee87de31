"""Send a queued outbound message (a 997/999/TA1 today) through the partner's transport.

Idempotent: a message already sent is not sent again. The send happens outside any
transaction; the receipt (archived) and the new status are written afterwards. A retryable
failure puts the outbox row back in the queue with a growing delay (the outbox sweep
publishes it then); after ``transport_max_attempts`` or a permanent failure the message
is ``failed`` with the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from gateway.processing.context import PipelineContext
from gateway.processing.profiles import ProfileMissing, load_profile
from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.store.blobs import record_blob
from gateway.store.enums import MessageStatus, OutboxStatus
from gateway.store.events import append_message_event
from gateway.store.models import Message, OutboxEntry
from gateway.store.types import utcnow
from gateway.transports import OutboundMessage, Receipt, Transport, TransportError

MAX_RETRY_DELAY = 3600.0


@dataclass(frozen=True)
class SendOutcome:
    """What a send did: sent, skipped (already done), will retry, or failed."""

    message_id: uuid.UUID
    status: str
    error: str | None = None


def send_message(
    ctx: PipelineContext, message_id: uuid.UUID, *, transports: dict[str, Transport]
) -> SendOutcome:
    """Send one queued outbound message and record the receipt."""
    with ctx.db.unit_of_work(read_only=True) as session:
        message = session.get(Message, message_id)
        if message is None or message.partner_id is None:
            return SendOutcome(message_id, "missing")
        if message.status in (MessageStatus.SENT, MessageStatus.FAILED):
            status = message.status.value
            profile = None
        else:
            status = ""
            try:
                profile = load_profile(session, message.partner_id, ctx.box).profile
            except ProfileMissing as exc:
                profile, status = None, f"failed: {exc}"
        outbound = OutboundMessage(
            str(message.id),
            message.partner_id,
            message.content_type or "application/edi-x12",
            message.filename,
            message.correlation_id,
        )
        transport_name, sha256 = message.transport.value, message.content_sha256
    if status in (MessageStatus.SENT.value, MessageStatus.FAILED.value):
        _finish_outbox(ctx, message_id, OutboxStatus.DONE)
        return SendOutcome(message_id, "skipped")
    if profile is None:
        return _record_failure(ctx, message_id, status, retryable=False)
    transport = transports.get(transport_name)
    if transport is None:
        return _record_failure(
            ctx, message_id, f"no outbound sender for transport {transport_name!r}", retryable=False
        )
    with ctx.blobs.open(sha256) as handle:
        payload = handle.read()
    try:
        receipt = transport.send(outbound, payload, profile)
    except TransportError as exc:
        return _record_failure(ctx, message_id, str(exc), retryable=exc.retryable)
    return _record_sent(ctx, message_id, receipt)


def _finish_outbox(
    ctx: PipelineContext, message_id: uuid.UUID, status: OutboxStatus, error: str | None = None
) -> None:
    with ctx.db.unit_of_work() as session:
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.message_id == message_id,
                OutboxEntry.task_name == OUTBOX_SEND_MESSAGE,
                OutboxEntry.status.in_([OutboxStatus.PENDING, OutboxStatus.ENQUEUED]),
            )
            .values(status=status, last_error=error)
        )


def _record_sent(ctx: PipelineContext, message_id: uuid.UUID, receipt: Receipt) -> SendOutcome:
    blob = ctx.blobs.put_bytes(receipt.body) if receipt.body else None
    with ctx.db.unit_of_work() as session:
        message = session.execute(
            select(Message)
            .where(Message.id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if message.status is MessageStatus.SENT:
            return SendOutcome(message_id, "skipped")
        if blob is not None:
            record_blob(session, blob)
            message.receipt_sha256 = blob.sha256
        message.status = MessageStatus.SENT
        message.error = None
        if receipt.remote_id:
            message.transport_message_id = receipt.remote_id[:500]
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.message_id == message_id, OutboxEntry.task_name == OUTBOX_SEND_MESSAGE)
            .values(status=OutboxStatus.DONE)
        )
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
    return SendOutcome(message_id, "sent")


def _record_failure(
    ctx: PipelineContext, message_id: uuid.UUID, error: str, *, retryable: bool
) -> SendOutcome:
    now = utcnow()
    with ctx.db.unit_of_work() as session:
        message = session.execute(
            select(Message)
            .where(Message.id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()
        if message.status in (MessageStatus.SENT, MessageStatus.FAILED):
            return SendOutcome(message_id, "skipped")
        entry = session.scalars(
            select(OutboxEntry)
            .where(OutboxEntry.message_id == message_id, OutboxEntry.task_name == OUTBOX_SEND_MESSAGE)
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
        append_message_event(
            session,
            message,
            event_type="message.send_failed",
            actor="worker",
            data={"error": error[:2000], "attempt": attempts, "final": final},
        )
    return SendOutcome(message_id, "failed" if final else "retry", error)
