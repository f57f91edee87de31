"""The event trail: hash-chained, append-only, serialised under concurrency, tamper-evident."""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from gateway.store.db import Database
from gateway.store.events import GENESIS_HASH, append_event, verify_chain
from gateway.store.models import Event

pytestmark = pytest.mark.integration


def _append(database: Database, count: int) -> None:
    for index in range(count):
        with database.unit_of_work() as session:
            append_event(
                session,
                event_type="message.received",
                message_id=uuid.uuid4(),
                partner_id="acme",
                correlation_id=f"corr-{index}",
                data={"n": index, "amount": "12.50", "nested": {"b": [1, 2], "a": None}},
            )


def _disable_append_only(database: Database) -> None:
    with database.engine.begin() as connection:
        if database.is_sqlite:
            connection.exec_driver_sql("DROP TRIGGER events_no_update")
            connection.exec_driver_sql("DROP TRIGGER events_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE events DISABLE TRIGGER events_append_only")


def test_appended_events_form_an_intact_chain(database: Database) -> None:
    _append(database, 5)
    with database.unit_of_work(read_only=True) as session:
        events = session.scalars(select(Event).order_by(Event.id)).all()
        assert [event.id for event in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        assert verify_chain(session) == []


def test_rolled_back_event_leaves_no_gap(database: Database) -> None:
    _append(database, 1)
    with pytest.raises(RuntimeError), database.unit_of_work() as session:
        append_event(session, event_type="doomed")
        raise RuntimeError("the work failed")
    _append(database, 1)
    with database.unit_of_work(read_only=True) as session:
        assert session.scalars(select(Event.id).order_by(Event.id)).all() == [1, 2]
        assert verify_chain(session) == []


def test_events_cannot_be_updated_or_deleted(database: Database) -> None:
    _append(database, 1)
    for statement in ("UPDATE events SET event_type = 'forged'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"), database.unit_of_work() as session:
            session.execute(text(statement))


def test_altered_event_is_reported_by_the_chain_walk(database: Database) -> None:
    _append(database, 4)
    _disable_append_only(database)
    with database.unit_of_work() as session:
        event = session.get_one(Event, 2)
        event.data = {**event.data, "amount": "99999.00"}
    with database.unit_of_work(read_only=True) as session:
        breaks = verify_chain(session)
    assert [(b.event_id, "altered" in b.reason) for b in breaks] == [(2, True)]


def test_deleted_events_are_reported_by_the_chain_walk(database: Database) -> None:
    _append(database, 4)
    _disable_append_only(database)
    with database.unit_of_work() as session:
        session.execute(text("DELETE FROM events WHERE id = 3"))
    with database.unit_of_work(read_only=True) as session:
        breaks = verify_chain(session)
    assert {b.event_id for b in breaks} == {4}
    assert any("missing" in b.reason for b in breaks)


def test_removed_tail_is_reported_against_the_chain_head(database: Database) -> None:
    _append(database, 3)
    _disable_append_only(database)
    with database.unit_of_work() as session:
        session.execute(text("DELETE FROM events WHERE id = 3"))
    with database.unit_of_work(read_only=True) as session:
        breaks = verify_chain(session)
    assert [b.event_id for b in breaks] == [None]


def test_concurrent_appends_never_fork_the_chain(database: Database) -> None:
    threads, per_thread = 8, 15
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            _append(database, per_thread)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    with database.unit_of_work(read_only=True) as session:
        ids = session.scalars(select(Event.id).order_by(Event.id)).all()
        assert ids == list(range(1, threads * per_thread + 1))
        assert verify_chain(session) == []
