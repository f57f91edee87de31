"""Outbound flows the workers run: flush due batches, prepare replays, settle documents after a send."""

from __future__ import annotations

import uuid
from functools import partial

from gateway.outbound.replay import prepare_outbound_replay
from gateway.outbound.service import flush_due_batches
from gateway.outbound.settling import settle_documents
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import SEND_MESSAGE
from gateway.processing.sending import AfterSend
from gateway.store.types import utcnow


def flush_batches(ctx: PipelineContext) -> int:
    """Generate every due batch and ring the send doorbell for each; how many went out."""
    generated = flush_due_batches(ctx.db, blobs=ctx.blobs, box=ctx.box, lease=ctx.lease)
    if ctx.publisher is not None:
        for item in generated:
            ctx.publisher.publish(
                SEND_MESSAGE, {"message_id": str(item.message_id), "outbox_id": item.outbox_id}
            )
    return len(generated)


def before_send(ctx: PipelineContext, message_id: uuid.UUID, *, control_numbers: str | None = None) -> bool:
    """Prepare an outbound replay for sending (a no-op for every other message)."""
    with ctx.db.unit_of_work() as session:
        return prepare_outbound_replay(
            session, message_id, blobs=ctx.blobs, box=ctx.box, control_numbers=control_numbers, now=utcnow()
        )


def settle_hook(ctx: PipelineContext) -> AfterSend:
    """What recording a send also does for outbound documents: sent/failed, ack clock, ERP told."""
    return partial(settle_documents, box=ctx.box, policy=ctx.retry_policy())
