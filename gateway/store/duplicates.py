"""Duplicate detection: same (sender, receiver, ISA13) within a window, or identical bytes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.enums import Direction
from gateway.store.models import Interchange, Message
from gateway.store.types import utcnow


def find_duplicate_interchange(
    session: Session,
    *,
    sender: tuple[str, str],
    receiver: tuple[str, str],
    control_number: str,
    window_days: int,
    exclude_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Interchange | None:
    """The earliest inbound interchange with the same ids and ISA13 inside the window."""
    since = (now or utcnow()) - timedelta(days=window_days)
    query = (
        select(Interchange)
        .where(
            Interchange.sender_qualifier == sender[0],
            Interchange.sender_id == sender[1],
            Interchange.receiver_qualifier == receiver[0],
            Interchange.receiver_id == receiver[1],
            Interchange.control_number == control_number,
            Interchange.created_at >= since,
            Interchange.direction == Direction.INBOUND,
            Interchange.is_duplicate.is_(False),
        )
        .order_by(Interchange.created_at)
        .limit(1)
    )
    if exclude_id is not None:
        query = query.where(Interchange.id != exclude_id)
    return session.scalars(query).first()


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
