"""The acknowledgment flows beat runs: the overdue sweep and the business-deadline check."""

from __future__ import annotations

from gateway.acks.deadlines import check_deadlines
from gateway.acks.overdue import mark_overdue
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import DELIVER
from gateway.store.types import utcnow

DELIVER_BATCH = 50


def _publish(ctx: PipelineContext, ids: list[str]) -> None:
    if ctx.publisher is None:
        return
    for start in range(0, len(ids), DELIVER_BATCH):
        ctx.publisher.publish(DELIVER, {"delivery_ids": ids[start : start + DELIVER_BATCH]})


def sweep_overdue(ctx: PipelineContext) -> int:
    """Mark expired expectations overdue and publish their ``ack.overdue`` deliveries; how many."""
    with ctx.db.unit_of_work() as session:
        outcome = mark_overdue(
            session, policy=ctx.retry_policy(), now=utcnow(), limit=ctx.tuning.sweep_batch_size
        )
    _publish(ctx, [str(i) for i in outcome.delivery_ids])
    return len(outcome.expectation_ids)


def sweep_deadlines(ctx: PipelineContext) -> int:
    """Raise new business-deadline alerts and publish their deliveries; how many deliveries."""
    with ctx.db.unit_of_work() as session:
        deliveries = check_deadlines(session, policy=ctx.retry_policy(), now=utcnow())
    _publish(ctx, [str(i) for i in deliveries])
    return len(deliveries)
