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

Phases 1 and 2 live in :mod:`gateway.processing.reading`, phase 3 in
:mod:`gateway.processing.writing` (its state in :mod:`~gateway.processing.writer`, its acks in
:mod:`~gateway.processing.acknowledging`); this module holds the entry points and the follow-up.
"""


from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy import update

from gateway.processing.acknowledging import ack_send_args
from gateway.processing.context import PipelineContext
from gateway.processing.outcome import FINISHED, ProcessOutcome
from gateway.processing.publisher import DELIVER, OUTBOX_PROCESS_MESSAGE, SEND_MESSAGE
from gateway.processing.reading import parse_message, read_message
from gateway.processing.sending import send_planned
from gateway.processing.writing import begin_write, complete_writes, mark_outbox_done
from gateway.store.enums import MessageStatus, OutboxStatus
from gateway.store.events import append_message_event
from gateway.store.models import Message, OutboxEntry
from gateway.transports import Transport as Sender

log = logging.getLogger("edigate.processing")
DELIVER_BATCH = 50


def process_message(
    ctx: PipelineContext,
    message_id: uuid.UUID,
    *,
    check_duplicates: bool = True,
    send_acks: bool = True,
    publish: bool = True,
) -> ProcessOutcome:
    """Process one received message (idempotent) and publish its follow-up work."""
    snap = read_message(ctx, message_id)
    if snap.status in FINISHED:
        _finish_outbox(ctx, message_id)
        return ProcessOutcome(message_id, snap.status, skipped=True)
    parsed = parse_message(ctx, snap)
    with ctx.db.unit_of_work() as session:
        [outcome] = complete_writes(session, [
            begin_write(session, ctx, snap, parsed, check_duplicates=check_duplicates, send_acks=send_acks)])
    if publish:
        publish_followups(ctx, outcome)
    return outcome


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
            ctx.publisher.publish(SEND_MESSAGE, {**ack_send_args(ack_id), "outbox_id": entry_id})
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


def _finish_outbox(ctx: PipelineContext, message_id: uuid.UUID) -> None:
    with ctx.db.unit_of_work() as session:
        mark_outbox_done(session, message_id)
