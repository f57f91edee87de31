"""Hot-path Core helpers: several tables in one statement, ORM changes flushed before Core runs."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.archive import BlobRef
from gateway.store.blobs import record_blob
from gateway.store.core import insert_tables, run, table_of
from gateway.store.db import Database
from gateway.store.enums import Direction, MessageStatus, OutboxStatus, Transport
from gateway.store.models import Message, OutboxEntry, Partner
from gateway.store.types import utcnow

SHA = "ab" * 32


def _message_row(message_id: uuid.UUID) -> dict[str, object]:
    now = utcnow()
    return {
        "id": message_id,
        "direction": Direction.OUTBOUND,
        "transport": Transport.HTTP,
        "partner_id": None,
        "status": MessageStatus.QUEUED,
        "content_sha256": SHA,
        "size": 3,
        "content_type": "application/edi-x12",
        "correlation_id": "c",
        "received_at": now,
        "updated_at": now,
    }


def _outbox_row(message_id: uuid.UUID) -> dict[str, object]:
    now = utcnow()
    return {
        "task_name": "send_message",
        "message_id": message_id,
        "task_args": {"message_id": str(message_id)},
        "status": OutboxStatus.ENQUEUED,
        "attempts": 1,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def test_children_and_parents_go_in_together_and_the_last_table_returns(database: Database) -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    with database.unit_of_work() as session:
        record_blob(session, BlobRef(sha256=SHA, size=3))
        returned = insert_tables(
            session,
            [
                (table_of(Message), [_message_row(i) for i in ids]),
                (table_of(OutboxEntry), [_outbox_row(i) for i in ids]),
            ],
            returning=("id", "message_id"),
        )
    assert sorted(row.message_id for row in returned) == sorted(ids)
    with database.unit_of_work(read_only=True) as session:
        messages = session.scalars(select(Message).where(Message.id.in_(ids))).all()
        # is_duplicate was left out of the rows: its scalar default (False) was filled in.
        assert [m.is_duplicate for m in messages] == [False, False]
        entries = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id.in_(ids))).all()
        assert {e.id for e in entries} == {row.id for row in returned}


def test_a_child_without_its_parent_is_refused_and_nothing_is_kept(database: Database) -> None:
    parent, orphan = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(IntegrityError), database.unit_of_work() as session:
        record_blob(session, BlobRef(sha256=SHA, size=3))
        insert_tables(
            session,
            [(table_of(Message), [_message_row(parent)]), (table_of(OutboxEntry), [_outbox_row(orphan)])],
        )
    with database.unit_of_work(read_only=True) as session:
        assert session.get(Message, parent) is None


def test_core_statements_see_pending_orm_changes(database: Database) -> None:
    with database.unit_of_work() as session:
        session.add(Partner(id="p1", name="P", status="test"))
        partners = table_of(Partner)
        assert run(session, select(partners.c.id).where(partners.c.id == "p1")).scalar() == "p1"
