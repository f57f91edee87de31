"""The overdue sweep: expectations past ``due_at`` become ``overdue`` and raise ``ack.overdue``.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so concurrent beats split the work; a group
and its sets turn overdue together, with one event and one webhook per group.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.acks.expectations import append_expectation_event
from gateway.acks.notify import ACK_OVERDUE, expectation_payload, notify, subject_for
from gateway.acks.reconcile import refresh_message_ack_status
from gateway.deliveries.service import RetryPolicy
from gateway.store.enums import AckStatus
from gateway.store.models import AckExpectation, FunctionalGroup


@dataclass
class OverdueOutcome:
    """Which group expectations turned overdue and the deliveries to publish."""

    expectation_ids: list[uuid.UUID] = field(default_factory=list)
    delivery_ids: list[uuid.UUID] = field(default_factory=list)


def mark_overdue(session: Session, *, policy: RetryPolicy, now: datetime, limit: int = 200) -> OverdueOutcome:
    """Turn pending group expectations past their due time overdue (and their pending sets)."""
    outcome = OverdueOutcome()
    groups = session.scalars(
        select(AckExpectation)
        .where(
            AckExpectation.status == AckStatus.PENDING,
            AckExpectation.due_at <= now,
            AckExpectation.transaction_id.is_(None),
        )
        .order_by(AckExpectation.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for group in groups:
        group.status = AckStatus.OVERDUE
        group.details = {**group.details, "overdue_at": now.isoformat()}
        session.execute(
            update(AckExpectation)
            .where(
                AckExpectation.group_id == group.group_id,
                AckExpectation.transaction_id.is_not(None),
                AckExpectation.status == AckStatus.PENDING,
            )
            .values(status=AckStatus.OVERDUE)
        )
        group_row = session.get(FunctionalGroup, group.group_id)
        if group_row is not None:
            group_row.ack_status = AckStatus.OVERDUE
        refresh_message_ack_status(session, group.message_id)
        sets = list(
            session.scalars(
                select(AckExpectation)
                .where(AckExpectation.group_id == group.group_id, AckExpectation.transaction_id.is_not(None))
                .execution_options(populate_existing=True)
            )
        )
        append_expectation_event(
            session,
            group,
            event_type="ack.overdue",
            actor="sweeper",
            data={
                "due_at": group.due_at.isoformat(),
                "ack_type": group.ack_type,
                "interchange_control_number": group.interchange_control_number,
                "group_control_number": group.group_control_number,
                "sets": len(sets),
            },
        )
        outcome.expectation_ids.append(group.id)
        outcome.delivery_ids.extend(
            notify(
                session,
                event_type=ACK_OVERDUE,
                subject_id=subject_for(group.id, ACK_OVERDUE),
                partner_id=group.partner_id,
                payload=expectation_payload(session, group, sets),
                message_id=group.message_id,
                document_id=None,
                correlation_id=group.correlation_id,
                policy=policy,
                now=now,
            )
        )
    return outcome
