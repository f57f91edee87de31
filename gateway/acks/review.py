"""The review queue: list expectations by state, read one, record a review; unmatched acks.

Functions take the caller's session and never commit. ``partner_scope`` limits a partner-bound
caller to its own rows (internal roles pass None).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, tuple_, update
from sqlalchemy.orm import Session

from gateway.acks.expectations import append_expectation_event
from gateway.acks.notify import ACK_UNMATCHED, expectation_payload
from gateway.keyset import InvalidCursor, decode_position, encode_position
from gateway.store.enums import AckStatus
from gateway.store.models import AckExpectation, Event

MAX_PAGE = 200


class AckNotFound(LookupError):
    """No expectation with that id (or not visible to the caller)."""


@dataclass(frozen=True)
class AckQuery:
    """Filters of ``GET /acks``: states, partner, level, review state, due before."""

    statuses: Sequence[AckStatus] = ()
    partner_id: str | None = None
    level: str = "group"  # group | transaction | all
    reviewed: bool | None = None
    due_before: datetime | None = None
    message_id: uuid.UUID | None = None


def expectation_view(session: Session, row: AckExpectation, *, with_sets: bool = False) -> dict[str, Any]:
    """An expectation as the API shows it (its sets and documents when asked)."""
    body: dict[str, Any] = {
        "id": str(row.id),
        "partner_id": row.partner_id,
        "level": "transaction" if row.transaction_id else "group",
        "message_id": str(row.message_id),
        "group_id": str(row.group_id),
        "transaction_id": str(row.transaction_id) if row.transaction_id else None,
        "interchange_control_number": row.interchange_control_number,
        "group_control_number": row.group_control_number,
        "transaction_control_number": row.transaction_control_number,
        "set_id": row.set_id,
        "functional_id": row.functional_id,
        "ack_type": row.ack_type,
        "status": row.status.value,
        "due_at": row.due_at.isoformat(),
        "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
        "ack_message_id": str(row.ack_message_id) if row.ack_message_id else None,
        "details": row.details,
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
        "reviewed_by": row.reviewed_by,
        "review_note": row.review_note,
        "correlation_id": row.correlation_id,
        "created_at": row.created_at.isoformat(),
    }
    if with_sets and row.transaction_id is None:
        sets = list(
            session.scalars(
                select(AckExpectation)
                .where(AckExpectation.group_id == row.group_id, AckExpectation.transaction_id.is_not(None))
                .order_by(AckExpectation.transaction_control_number)
            )
        )
        body["transactions"] = expectation_payload(session, row, sets)["data"]["transactions"]
    return body


def list_expectations(
    session: Session,
    query: AckQuery,
    *,
    partner_scope: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of expectations, newest first, and the cursor of the next page."""
    statement = select(AckExpectation)
    if query.statuses:
        statement = statement.where(AckExpectation.status.in_(list(query.statuses)))
    partner = partner_scope or query.partner_id
    if partner_scope and query.partner_id and query.partner_id != partner_scope:
        return [], None
    if partner:
        statement = statement.where(AckExpectation.partner_id == partner)
    if query.level == "group":
        statement = statement.where(AckExpectation.transaction_id.is_(None))
    elif query.level == "transaction":
        statement = statement.where(AckExpectation.transaction_id.is_not(None))
    if query.reviewed is True:
        statement = statement.where(AckExpectation.reviewed_at.is_not(None))
    elif query.reviewed is False:
        statement = statement.where(AckExpectation.reviewed_at.is_(None))
    if query.due_before is not None:
        statement = statement.where(AckExpectation.due_at < query.due_before)
    if query.message_id is not None:
        statement = statement.where(AckExpectation.message_id == query.message_id)
    if cursor:
        created_at, ident = decode_position(cursor, "acks")
        try:
            key = uuid.UUID(ident)
        except ValueError as exc:
            raise InvalidCursor("the cursor is not valid") from exc
        statement = statement.where(
            tuple_(AckExpectation.created_at, AckExpectation.id) < tuple_(created_at, key)
        )
    size = max(1, min(limit, MAX_PAGE))
    rows = list(
        session.scalars(
            statement.order_by(AckExpectation.created_at.desc(), AckExpectation.id.desc()).limit(size + 1)
        )
    )
    more = len(rows) > size
    rows = rows[:size]
    following = encode_position("acks", rows[-1].created_at, rows[-1].id) if more and rows else None
    return [expectation_view(session, r) for r in rows], following


def get_expectation(
    session: Session, expectation_id: uuid.UUID, *, partner_scope: str | None = None
) -> dict[str, Any]:
    """One expectation with its sets and their documents."""
    row = session.get(AckExpectation, expectation_id)
    if row is None or (partner_scope is not None and row.partner_id != partner_scope):
        raise AckNotFound(f"acknowledgment expectation {expectation_id} not found")
    return expectation_view(session, row, with_sets=True)


def review_expectation(
    session: Session, expectation_id: uuid.UUID, *, actor: str, note: str | None, now: datetime
) -> dict[str, Any]:
    """Record who reviewed an expectation, when and why (a group's review covers its sets)."""
    row = session.execute(
        select(AckExpectation).where(AckExpectation.id == expectation_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise AckNotFound(f"acknowledgment expectation {expectation_id} not found")
    previous = {
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
        "reviewed_by": row.reviewed_by,
    }
    row.reviewed_at, row.reviewed_by, row.review_note = now, actor, note
    if row.transaction_id is None:
        session.execute(
            update(AckExpectation)
            .where(
                AckExpectation.group_id == row.group_id,
                AckExpectation.transaction_id.is_not(None),
                or_(AckExpectation.reviewed_at.is_(None), AckExpectation.reviewed_at < now),
            )
            .values(reviewed_at=now, reviewed_by=actor, review_note=note)
        )
    append_expectation_event(
        session,
        row,
        event_type="ack.reviewed",
        actor=actor,
        data={"status": row.status.value, "note": note, "previous": previous},
    )
    return expectation_view(session, row, with_sets=True)


def list_unmatched(
    session: Session, *, partner_id: str | None = None, cursor: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """Acknowledgments that matched nothing we sent (newest first)."""
    statement = select(Event).where(Event.event_type == ACK_UNMATCHED)
    if partner_id:
        statement = statement.where(Event.partner_id == partner_id)
    if cursor:
        _, ident = decode_position(cursor, "unmatched-acks")
        if not ident.isdigit():
            raise InvalidCursor("the cursor is not valid")
        statement = statement.where(Event.id < int(ident))
    size = max(1, min(limit, MAX_PAGE))
    rows = list(session.scalars(statement.order_by(Event.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    items = [
        {
            "event_id": r.id,
            "partner_id": r.partner_id,
            "message_id": str(r.message_id) if r.message_id else None,
            "occurred_at": r.occurred_at.isoformat(),
            **r.data,
        }
        for r in rows
    ]
    last = rows[-1] if more and rows else None
    following = encode_position("unmatched-acks", last.occurred_at, last.id) if last else None
    return items, following
