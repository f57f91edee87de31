"""The transactional outbox: work is recorded with the state it needs, then enqueued.

Write an entry in the same transaction as the message (or document, or delivery) it refers
to; after commit, publish it. A sweeper re-publishes entries that stayed ``pending`` or
``enqueued`` past their ``next_attempt_at``, so a lost task is only late, never lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.enums import OutboxStatus
from gateway.store.models import OutboxEntry
from gateway.store.types import utcnow

REDELIVER_AFTER = timedelta(minutes=5)


def add_outbox_entry(
    session: Session,
    *,
    task_name: str,
    message_id: uuid.UUID | None = None,
    task_args: Mapping[str, Any] | None = None,
) -> OutboxEntry:
    """Record a task to run once the caller's transaction commits."""
    entry = OutboxEntry(
        task_name=task_name,
        message_id=message_id,
        task_args=dict(task_args or {}),
        status=OutboxStatus.PENDING,
        next_attempt_at=utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry


def enqueued_row(
    task_name: str, message_id: uuid.UUID, task_args: Mapping[str, Any], *, now: datetime, lease: timedelta
) -> dict[str, Any]:
    """The outbox row of a task published right after commit; the sweep publishes it again after ``lease``."""
    return {
        "task_name": task_name,
        "message_id": message_id,
        "task_args": dict(task_args),
        "status": OutboxStatus.ENQUEUED,
        "attempts": 1,
        "next_attempt_at": now + lease,
        "created_at": now,
        "updated_at": now,
    }


def claim_due_entries(
    session: Session, *, limit: int = 100, now: datetime | None = None
) -> Sequence[OutboxEntry]:
    """Lock and return entries due for (re)publishing; other sweepers skip the locked ones."""
    moment = now or utcnow()
    return session.scalars(
        select(OutboxEntry)
        .where(
            OutboxEntry.status.in_([OutboxStatus.PENDING, OutboxStatus.ENQUEUED]),
            OutboxEntry.next_attempt_at <= moment,
        )
        .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def mark_enqueued(
    entry: OutboxEntry, *, now: datetime | None = None, redeliver_after: timedelta = REDELIVER_AFTER
) -> None:
    """Note a publish; if the task does not finish in time the sweeper publishes it again."""
    entry.status = OutboxStatus.ENQUEUED
    entry.attempts += 1
    entry.next_attempt_at = (now or utcnow()) + redeliver_after


def mark_done(session: Session, *, entry_id: int) -> None:
    """The task ran to completion; the entry is not published again."""
    entry = session.get(OutboxEntry, entry_id)
    if entry is not None:
        entry.status = OutboxStatus.DONE


def mark_failed(session: Session, *, entry_id: int, error: str) -> None:
    """The task gave up for good; the entry stays for inspection and replay."""
    entry = session.get(OutboxEntry, entry_id)
    if entry is not None:
        entry.status = OutboxStatus.FAILED
        entry.last_error = error
