"""Acknowledgment expectations for what we send: one per functional group and per transaction set.

A row without ``transaction_id`` is the group's (what a 997/999's AK1/AK9 answers); the other
rows are its sets (AK2/AK5). ``due_at`` comes from the profile's
``x12.acknowledgment.expect_within_hours`` and restarts when the transport confirms the send.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, String, Uuid, bindparam, cast, column, func, select, update
from sqlalchemy.orm import Session

from gateway.store.core import record_json, run, table_of
from gateway.store.enums import AckStatus
from gateway.store.events import append_event
from gateway.store.models import AckExpectation
from translators.acks import choose_ack_kind
from translators.settings import EnvelopeSettings

OPEN_STATUSES = (AckStatus.PENDING, AckStatus.OVERDUE)
_EXPECTATIONS = table_of(AckExpectation)
_RESTART_CLOCK = (
    update(_EXPECTATIONS)
    .where(
        _EXPECTATIONS.c.message_id.in_(bindparam("message_ids", expanding=True)),
        _EXPECTATIONS.c.status == AckStatus.PENDING,
    )
    .values(due_at=bindparam("new_due_at"))
)
# PostgreSQL: each message's pending rows get its own due time from one JSON parameter ``dues``;
# a CTE of the caller's statement (see ``due_times``).
_DUES = (
    func.json_to_recordset(cast(bindparam("dues", type_=String), JSON))
    .table_valued(column("message_id", Uuid()), column("due_at", DateTime(timezone=True)))
    .render_derived(name="dues", with_types=True)
)
RESTART_CLOCKS = (
    update(_EXPECTATIONS)
    .where(_EXPECTATIONS.c.message_id == _DUES.c.message_id, _EXPECTATIONS.c.status == AckStatus.PENDING)
    .values(due_at=_DUES.c.due_at)
)


@dataclass(frozen=True)
class ExpectationPlan:
    """Which acknowledgment a partner owes us for a group, and by when."""

    ack_type: str
    window: timedelta
    ta1_expected: bool


def plan_for(envelope: EnvelopeSettings, group_version: str) -> ExpectationPlan | None:
    """The acknowledgment the partner's profile says it sends for a group (None: it sends none)."""
    kind = choose_ack_kind(group_version, envelope.acknowledgment)
    if kind is None:
        return None
    hours = envelope.acknowledgment.expect_within_hours
    return ExpectationPlan(kind, timedelta(hours=hours), envelope.request_ta1)


def expectation_rows(
    plan: ExpectationPlan,
    *,
    message_id: uuid.UUID,
    interchange_control_number: str,
    group: Mapping[str, Any],
    transactions: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The ``ack_expectations`` rows of a sent group: its own, then one per transaction set."""
    common = {
        "partner_id": group["partner_id"],
        "group_id": group["id"],
        "message_id": message_id,
        "interchange_control_number": interchange_control_number,
        "group_control_number": group["control_number"],
        "functional_id": group["functional_id"],
        "ack_type": plan.ack_type,
        "status": AckStatus.PENDING,
        "due_at": now + plan.window,
        "acknowledged_at": None,
        "ack_message_id": None,
        "reviewed_at": None,
        "reviewed_by": None,
        "review_note": None,
        "correlation_id": group["correlation_id"],
        "created_at": now,
    }
    rows = [
        common | {"id": uuid.uuid4(), "transaction_id": None, "set_id": None,
                  "transaction_control_number": None, "details": {"ta1_expected": plan.ta1_expected}}
    ]
    rows.extend(
        common | {"id": uuid.uuid4(), "transaction_id": ts["id"], "set_id": ts["set_id"],
                  "transaction_control_number": ts["control_number"], "details": {}}
        for ts in transactions
    )
    return rows


def restart_clock(
    session: Session, *, message_ids: Sequence[uuid.UUID], sent_at: datetime, window: timedelta
) -> int:
    """The partner's window starts when the messages really left: pending rows get a new ``due_at``."""
    result = run(session, _RESTART_CLOCK, {"message_ids": list(message_ids), "new_due_at": sent_at + window})
    return int(getattr(result, "rowcount", 0) or 0)


def due_times(dues: Mapping[uuid.UUID, datetime]) -> str:
    """The ``dues`` parameter of ``RESTART_CLOCKS``: each message's new due time."""
    return record_json([{"message_id": message_id, "due_at": due} for message_id, due in dues.items()])


def expectations_of_message(session: Session, message_id: uuid.UUID) -> list[AckExpectation]:
    """Every expectation of one outbound message (groups first)."""
    rows = session.scalars(
        select(AckExpectation)
        .where(AckExpectation.message_id == message_id)
        .order_by(AckExpectation.created_at)
    ).all()
    return sorted(rows, key=lambda r: (r.transaction_id is not None, r.transaction_control_number or ""))


def append_expectation_event(
    session: Session, row: AckExpectation, *, event_type: str, actor: str, data: Mapping[str, Any]
) -> None:
    """Append an event about an acknowledgment expectation (its message, partner and correlation)."""
    append_event(session, event_type=event_type, data=data, actor=actor, partner_id=row.partner_id,
                 message_id=row.message_id, subject_type="ack_expectation", subject_id=row.id,
                 correlation_id=row.correlation_id)
