"""Outbound control numbers: monotonic, never reused, never skipped, also concurrently."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from gateway.store.control_numbers import (
    MAX_VALUE,
    ControlNumberError,
    ControlNumberExhausted,
    allocate,
    allocate_envelope,
    allocate_envelopes,
    format_control_number,
    peek_next,
    set_next,
)
from gateway.store.db import Database
from gateway.store.enums import ControlNumberKind, PartnerStatus
from gateway.store.models import Partner

pytestmark = pytest.mark.integration

ISA13 = ControlNumberKind.ISA13
PARTNER = "acme"


@pytest.fixture
def db(database: Database) -> Database:
    with database.unit_of_work() as session:
        session.add(Partner(id=PARTNER, name="ACME", status=PartnerStatus.TEST))
    return database


def _connection_info(database: Database) -> tuple[str, str | None]:
    url = database.engine.url.render_as_string(hide_password=False)
    if database.is_sqlite:
        return url, None
    with database.engine.connect() as connection:
        schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
    return url, str(schema)


def _allocate_many(url: str, schema: str | None, count: int) -> list[int]:
    database = Database.from_url(url, schema=schema)
    try:
        numbers = []
        for _ in range(count):
            with database.unit_of_work() as session:
                numbers.append(allocate(session, partner_id=PARTNER, kind=ISA13))
        return numbers
    finally:
        database.dispose()


def _allocate_then_crash(url: str, schema: str | None) -> None:
    database = Database.from_url(url, schema=schema)
    with database.unit_of_work() as session:
        allocate(session, partner_id=PARTNER, kind=ISA13)
        os._exit(1)  # the process dies before the transaction commits


def test_numbers_start_at_one_and_increase_by_one(db: Database) -> None:
    with db.unit_of_work() as session:
        assert [allocate(session, partner_id=PARTNER, kind=ISA13) for _ in range(3)] == [1, 2, 3]
        assert peek_next(session, partner_id=PARTNER, kind=ISA13) == 4


def test_envelope_gets_one_interchange_one_group_and_consecutive_sets(db: Database) -> None:
    with db.unit_of_work() as session:
        first = allocate_envelope(session, partner_id=PARTNER, transactions=3)
        second = allocate_envelope(session, partner_id=PARTNER, transactions=2)
    assert (first.isa13, first.gs06, first.st02) == (1, 1, (1, 2, 3))
    assert (second.isa13, second.gs06, second.st02) == (2, 2, (4, 5))


def test_envelopes_for_a_batch_are_allocated_at_once_and_contiguous(db: Database) -> None:
    with db.unit_of_work() as session:
        allocate_envelope(session, partner_id=PARTNER, transactions=1)
        batch = allocate_envelopes(session, partner_id=PARTNER, transactions=[2, 1, 3])
        after = allocate_envelope(session, partner_id=PARTNER, transactions=1)
    assert [(e.isa13, e.gs06, e.st02) for e in batch] == [(2, 2, (2, 3)), (3, 3, (4,)), (4, 4, (5, 6, 7))]
    assert (after.isa13, after.gs06, after.st02) == (5, 5, (8,))


def test_rolled_back_allocation_is_handed_out_again(db: Database) -> None:
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        allocate(session, partner_id=PARTNER, kind=ISA13)
        raise RuntimeError("sending failed before commit")
    with db.unit_of_work() as session:
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == 1


def test_admin_can_move_the_next_value_forward(db: Database) -> None:
    with db.unit_of_work() as session:
        set_next(session, partner_id=PARTNER, kind=ISA13, value=500, actor="admin")
    with db.unit_of_work() as session:
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == 500


def test_moving_the_next_value_backwards_needs_explicit_reuse(db: Database) -> None:
    with db.unit_of_work() as session:
        allocate(session, partner_id=PARTNER, kind=ISA13, count=10)
    with pytest.raises(ControlNumberError, match="reused"), db.unit_of_work() as session:
        set_next(session, partner_id=PARTNER, kind=ISA13, value=5, actor="admin")
    with db.unit_of_work() as session:
        set_next(session, partner_id=PARTNER, kind=ISA13, value=5, actor="admin", allow_reuse=True)
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == 5


def test_exhausted_counter_refuses_instead_of_wrapping(db: Database) -> None:
    with db.unit_of_work() as session:
        set_next(session, partner_id=PARTNER, kind=ISA13, value=MAX_VALUE, actor="admin")
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == MAX_VALUE
    with pytest.raises(ControlNumberExhausted), db.unit_of_work() as session:
        allocate(session, partner_id=PARTNER, kind=ISA13)


def test_control_numbers_are_formatted_as_x12_expects() -> None:
    assert format_control_number(ControlNumberKind.ISA13, 42) == "000000042"
    assert format_control_number(ControlNumberKind.GS06, 42) == "42"
    assert format_control_number(ControlNumberKind.ST02, 42) == "0042"


def test_eight_processes_get_every_number_exactly_once(db: Database) -> None:
    url, schema = _connection_info(db)
    processes, per_process = 8, 25
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(_allocate_many, [(url, schema, per_process)] * processes)
    numbers = sorted(n for result in results for n in result)
    assert numbers == list(range(1, processes * per_process + 1))  # no duplicates, no gaps
    assert all(result == sorted(result) for result in results)  # monotonic per allocator


def test_process_killed_before_commit_skips_no_number(db: Database) -> None:
    url, schema = _connection_info(db)
    with db.unit_of_work() as session:
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == 1
    child = multiprocessing.get_context("spawn").Process(target=_allocate_then_crash, args=(url, schema))
    child.start()
    child.join(60)
    assert child.exitcode == 1
    with db.unit_of_work() as session:
        assert allocate(session, partner_id=PARTNER, kind=ISA13) == 2
