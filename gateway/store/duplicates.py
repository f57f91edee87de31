"""Duplicate detection: same (sender, receiver, ISA13) within a window, or identical bytes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.store.core import run, table_of
from gateway.store.enums import Direction
from gateway.store.models import Interchange, Message
from gateway.store.types import utcnow

_INTERCHANGES = table_of(Interchange)
# Two rows: the earliest may be the one to exclude.
_SAME_ISA = (
    select(_INTERCHANGES.c.id, _INTERCHANGES.c.message_id)
    .where(
        _INTERCHANGES.c.sender_qualifier == bindparam("sender_qualifier"),
        _INTERCHANGES.c.sender_id == bindparam("sender_id"),
        _INTERCHANGES.c.receiver_qualifier == bindparam("receiver_qualifier"),
        _INTERCHANGES.c.receiver_id == bindparam("receiver_id"),
        _INTERCHANGES.c.control_number == bindparam("control_number"),
        _INTERCHANGES.c.created_at >= bindparam("since"),
        _INTERCHANGES.c.direction == Direction.INBOUND,
        _INTERCHANGES.c.is_duplicate.is_(False),
    )
    .order_by(_INTERCHANGES.c.created_at)
    .limit(2)
)


class InterchangeRef(NamedTuple):
    """An interchange row's id and its message's id."""

    id: uuid.UUID
    message_id: uuid.UUID


def find_duplicate_interchange(
    session: Session,
    *,
    sender: tuple[str, str],
    receiver: tuple[str, str],
    control_number: str,
    window_days: int,
    exclude_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> InterchangeRef | None:
    """The earliest inbound interchange with the same ids and ISA13 inside the window."""
    rows = run(
        session,
        _SAME_ISA,
        {
            "sender_qualifier": sender[0],
            "sender_id": sender[1],
            "receiver_qualifier": receiver[0],
            "receiver_id": receiver[1],
            "control_number": control_number,
            "since": (now or utcnow()) - timedelta(days=window_days),
        },
    )
    for row in rows:
        if row.id != exclude_id:
            return InterchangeRef(row.id, row.message_id)
    return None


def find_message_with_same_content(
    session: Session,
    *,
    content_sha256: str,
    direction: Direction = Direction.INBOUND,
    exclude_id: uuid.UUID | None = None,
) -> Message | None:
    """The earliest original (non-duplicate) message with byte-identical content."""
    query = (
        select(Message)
        .where(
            Message.content_sha256 == content_sha256,
            Message.direction == direction,
            Message.is_duplicate.is_(False),
            Message.replay_of_id.is_(None),
        )
        .order_by(Message.received_at)
        .limit(1)
    )
    if exclude_id is not None:
        query = query.where(Message.id != exclude_id)
    return session.scalars(query).first()
