"""The append-only event trail, hash-chained so that tampering shows.

Each event's ``hash`` is SHA-256 over its ``prev_hash`` followed by the canonical JSON of its
content (every column except ``hash`` and ``prev_hash``). ``id`` is the position in the chain,
1, 2, 3 … with no gaps. ``append_event`` records the event on the session; when the session
commits, its events are written together at the end of the chain under a lock on the single
``event_chain_head`` row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's write lock taken by
``BEGIN IMMEDIATE``). Taking that lock only at commit keeps the section that every writer
queues on down to one insert, one update and the commit itself, so the chain never forks and
rolled-back work leaves no event and no gap.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from gateway.store.core import record_json, run, table_of
from gateway.store.models import Event, EventChainHead
from gateway.store.statements import record_set_insert
from gateway.store.types import utcnow

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1
_PENDING = "edigate.pending_events"
_HEAD = table_of(EventChainHead)
_LOCK_HEAD = (
    select(_HEAD.c.last_event_id, _HEAD.c.last_hash).where(_HEAD.c.id == CHAIN_HEAD_ID).with_for_update()
)
_HASHED_COLUMNS = (
    "id", "occurred_at", "event_type", "actor", "partner_id", "message_id", "subject_type", "subject_id",
    "correlation_id", "data",
)
_EVENTS = table_of(Event)
_EVENT_COLUMNS = (*_HASHED_COLUMNS, "prev_hash", "hash")
_INSERT_EVENTS = insert(_EVENTS)
_MOVE_HEAD_CTE = (
    f"moved AS (UPDATE event_chain_head SET last_event_id = :new_last_id, "
    f"last_hash = :new_last_hash WHERE id = {CHAIN_HEAD_ID})"
)
# PostgreSQL: the events as one JSON record set, the head moved in a CTE: one statement whose
# text does not depend on how many events there are (psycopg parses it once).
_APPEND_EVENTS = record_set_insert(((_EVENTS, _EVENT_COLUMNS),), "", _MOVE_HEAD_CTE)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == CHAIN_HEAD_ID)
    .values(last_event_id=bindparam("new_last_id"), last_hash=bindparam("new_last_hash"))
)


class EventChainError(Exception):
    """The event chain cannot be appended to (e.g. its head row is missing)."""


@dataclass(frozen=True)
class ChainBreak:
    """One place where the stored chain does not verify."""

    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "chain head"
        return f"{where}: {self.reason}"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in an event")


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_content(event: Event) -> dict[str, Any]:
    """The hashed content of an event: every column but ``hash`` and ``prev_hash``."""
    return _content_of({column: getattr(event, column) for column in _HASHED_COLUMNS})




def _content_of(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "occurred_at": _timestamp(row["occurred_at"]),
        "event_type": row["event_type"],
        "actor": row["actor"],
        "partner_id": row["partner_id"],
        "message_id": str(row["message_id"]) if row["message_id"] else None,
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "correlation_id": row["correlation_id"],
        "data": row["data"],
    }


def compute_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """SHA-256 hex over ``prev_hash`` and the canonical JSON of ``content``."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(content).encode("utf-8"))
    return digest.hexdigest()


def append_event(
    session: Session,
    *,
    event_type: str,
    data: Mapping[str, Any] | None = None,
    actor: str | None = None,
    partner_id: str | None = None,
    message_id: uuid.UUID | None = None,
    subject_type: str | None = None,
    subject_id: str | uuid.UUID | None = None,
    correlation_id: str | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Record one event; it joins the end of the chain when the caller's transaction commits."""
    content = {
        "occurred_at": (occurred_at or utcnow()).astimezone(UTC),
        "event_type": event_type,
        "actor": actor,
        "partner_id": partner_id,
        "message_id": message_id,
        "subject_type": subject_type,
        "subject_id": str(subject_id) if subject_id is not None else None,
        "correlation_id": correlation_id,
        # Store exactly what is hashed (tuples → lists, UUIDs → strings …), as it is now.
        "data": json.loads(canonical_json(dict(data or {}))),
    }
    session.info.setdefault(_PENDING, []).append(content)


def flush_events(session: Session) -> None:
    """Write the session's recorded events to the chain now (they commit with the transaction)."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not pending:
        return
    head = run(session, _LOCK_HEAD).first()
    if head is None:
        session.info[_PENDING] = pending
        raise EventChainError("event_chain_head row is missing; run `edigate migrate`")
    last_id, last_hash = head.last_event_id, head.last_hash
    rows = []
    for content in pending:
        last_id += 1
        row = {"id": last_id, **content, "prev_hash": last_hash}
        last_hash = row["hash"] = compute_hash(last_hash, _content_of(row))
        rows.append(row)
    head_values = {"new_last_id": last_id, "new_last_hash": last_hash}
    if session.get_bind().dialect.name == "postgresql":
        run(session, _APPEND_EVENTS, {"rows_0": record_json(rows)} | head_values)
        return
    run(session, _INSERT_EVENTS, rows)
    run(session, _MOVE_HEAD, head_values)


@orm_event.listens_for(Session, "before_commit")
def _write_events_before_commit(session: Session) -> None:
    flush_events(session)


@orm_event.listens_for(Session, "after_rollback")
def _forget_events_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def iter_events(session: Session, *, batch_size: int = 1000) -> Iterator[Event]:
    """Every event in chain order, read in keyset batches (bounded memory)."""
    last_id = 0
    while True:
        batch = session.scalars(
            select(Event).where(Event.id > last_id).order_by(Event.id).limit(batch_size)
        ).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id
        session.expunge_all()


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What an event about a message records of it, for code that holds no ORM row."""

    id: uuid.UUID
    partner_id: str | None
    correlation_id: str


def append_message_event(
    session: Session,
    message: Any,
    *,
    event_type: str,
    actor: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Append an event about a message (its partner, id and correlation id as subject)."""
    append_event(session, event_type=event_type, data=data, actor=actor,
                        partner_id=message.partner_id, message_id=message.id, subject_type="message",
                        subject_id=message.id, correlation_id=message.correlation_id)


def verify_chain(session: Session, *, batch_size: int = 1000) -> list[ChainBreak]:
    """Recompute every event hash and link; an empty list means the chain is intact."""
    breaks: list[ChainBreak] = []
    expected_id, prev_hash = 1, GENESIS_HASH
    for event in iter_events(session, batch_size=batch_size):
        if event.id != expected_id:
            breaks.append(ChainBreak(event.id, f"expected event {expected_id}: rows missing"))
        if event.prev_hash != prev_hash:
            breaks.append(ChainBreak(event.id, "prev_hash does not match the previous event"))
        if compute_hash(event.prev_hash, event_content(event)) != event.hash:
            breaks.append(ChainBreak(event.id, "content does not match its hash (altered)"))
        expected_id, prev_hash = event.id + 1, event.hash
    head = session.get(EventChainHead, CHAIN_HEAD_ID)
    if head is None:
        breaks.append(ChainBreak(None, "event_chain_head row is missing"))
    elif head.last_event_id != expected_id - 1 or head.last_hash != prev_hash:
        breaks.append(
            ChainBreak(
                None,
                f"head points at event {head.last_event_id}, chain ends at "
                f"{expected_id - 1}: events removed or added around the head",
            )
        )
    return breaks
