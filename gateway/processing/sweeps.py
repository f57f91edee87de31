"""The sweeps beat runs: publish outbox rows and deliveries whose task was lost or is due again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gateway.deliveries.service import claim_due_deliveries
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import DELIVER, task_for_outbox
from gateway.store.outbox import claim_due_entries, mark_enqueued, mark_failed
from gateway.store.types import utcnow

MAX_OUTBOX_ATTEMPTS = 20
DELIVERY_BATCH = 20


@dataclass(frozen=True)
class SweepResult:
    """How many tasks a sweep published (and how many outbox rows it gave up on)."""

    published: int
    given_up: int = 0


def sweep_outbox(ctx: PipelineContext) -> SweepResult:
    """Publish due outbox rows (locked with SKIP LOCKED so concurrent sweepers split the work)."""
    if ctx.publisher is None:
        return SweepResult(0)
    to_publish: list[tuple[str, dict[str, object]]] = []
    given_up = 0
    now = utcnow()
    with ctx.db.unit_of_work() as session:
        for entry in claim_due_entries(session, limit=ctx.tuning.sweep_batch_size, now=now):
            if entry.attempts >= MAX_OUTBOX_ATTEMPTS:
                mark_failed(
                    session, entry_id=entry.id, error=f"published {entry.attempts} times without finishing"
                )
                given_up += 1
                continue
            mark_enqueued(entry, now=now, redeliver_after=ctx.lease)
            to_publish.append((task_for_outbox(entry.task_name), {**entry.task_args, "outbox_id": entry.id}))
    published = sum(1 for name, kwargs in to_publish if ctx.publisher.publish(name, dict(kwargs)))
    return SweepResult(published, given_up)


def sweep_deliveries(ctx: PipelineContext) -> SweepResult:
    """Publish deliveries that are due (first attempts whose task was lost, and retries)."""
    if ctx.publisher is None:
        return SweepResult(0)
    with ctx.db.unit_of_work() as session:
        ids: list[uuid.UUID] = claim_due_deliveries(
            session, lease=ctx.lease, limit=ctx.tuning.sweep_batch_size
        )
    published = 0
    for start in range(0, len(ids), DELIVERY_BATCH):
        batch = [str(i) for i in ids[start : start + DELIVERY_BATCH]]
        if ctx.publisher.publish(DELIVER, {"delivery_ids": batch}):
            published += len(batch)
    return SweepResult(published)
