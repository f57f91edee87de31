"""Outbound control numbers (ISA13, GS06, ST02) per partner: monotonic, never reused or skipped.

A number is allocated inside the caller's transaction by one upsert per call (``INSERT … ON
CONFLICT DO UPDATE … RETURNING``) that creates or advances the counter rows and locks them
(a row lock on PostgreSQL; the write lock ``BEGIN IMMEDIATE`` took on SQLite). Concurrent
allocators queue on that lock. Allocate in the same transaction that stores the
interchange using the number: a crash or rollback returns the number with the work, so it is
neither lost (skipped) nor handed out twice (reused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store.core import run
from gateway.store.enums import ControlNumberKind
from gateway.store.events import append_event
from gateway.store.models import ControlCounter
from gateway.store.statements import multi_row_insert, row_params
from gateway.store.types import utcnow

MAX_VALUE = 999_999_999  # nine digits for all three
_COUNTER_COLUMNS = ("partner_id", "kind", "next_value", "updated_at")
# A new counter starts at 1 + count; an existing one moves on by count, unless that passes MAX_VALUE.
_ADVANCE = (
    "ON CONFLICT (partner_id, kind) DO UPDATE SET "
    "next_value = control_counters.next_value + excluded.next_value - 1, updated_at = excluded.updated_at "
    "WHERE control_counters.next_value + excluded.next_value - 2 <= :max_value "
    "RETURNING kind, next_value"
)


class ControlNumberError(Exception):
    """A control number cannot be allocated or set."""


class ControlNumberExhausted(ControlNumberError):
    """The counter reached 999999999; an admin must set a next value (reuse is explicit)."""


@dataclass(frozen=True)
class EnvelopeNumbers:
    """The control numbers for one interchange with one group."""

    isa13: int
    gs06: int
    st02: tuple[int, ...]


def format_control_number(kind: ControlNumberKind, value: int) -> str:
    """The number as written in X12: ISA13 nine digits, ST02 at least four, GS06 as is."""
    if kind is ControlNumberKind.ISA13:
        return f"{value:09d}"
    if kind is ControlNumberKind.ST02:
        return f"{value:04d}"
    return str(value)


def _locked_counter(session: Session, partner_id: str, kind: ControlNumberKind) -> ControlCounter:
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        session.execute(
            module.insert(ControlCounter)
            .values(partner_id=partner_id, kind=kind, next_value=1)
            .on_conflict_do_nothing()
        )
    elif session.get(ControlCounter, (partner_id, kind)) is None:
        session.add(ControlCounter(partner_id=partner_id, kind=kind, next_value=1))
        session.flush()
    return session.execute(
        select(ControlCounter)
        .where(ControlCounter.partner_id == partner_id, ControlCounter.kind == kind)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def allocate(session: Session, *, partner_id: str, kind: ControlNumberKind, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers and return the first."""
    return allocate_many(session, partner_id=partner_id, counts={kind: count})[kind]


def allocate_many(
    session: Session, *, partner_id: str, counts: Mapping[ControlNumberKind, int]
) -> dict[ControlNumberKind, int]:
    """Reserve ``counts[kind]`` consecutive numbers of each kind in one statement; the firsts."""
    if any(count < 1 for count in counts.values()):
        raise ControlNumberError("count must be at least 1")
    rows = [(partner_id, kind, 1 + count, utcnow()) for kind, count in sorted(counts.items())]
    statement = multi_row_insert(ControlCounter.__table__, _COUNTER_COLUMNS, len(rows), _ADVANCE)
    result = run(session, statement, row_params(_COUNTER_COLUMNS, rows) | {"max_value": MAX_VALUE})
    advanced = {ControlNumberKind(row.kind): row.next_value for row in result}
    firsts = {}
    for kind, count in counts.items():
        if kind not in advanced or advanced[kind] - 1 > MAX_VALUE:
            raise ControlNumberExhausted(
                f"{kind.value} for partner {partner_id} would pass {MAX_VALUE}; set a next value"
            )
        firsts[kind] = advanced[kind] - count
    return firsts


def allocate_envelope(session: Session, *, partner_id: str, transactions: int) -> EnvelopeNumbers:
    """ISA13, GS06 and ``transactions`` ST02 numbers for one outbound interchange."""
    return allocate_envelopes(session, partner_id=partner_id, transactions=[transactions])[0]


def allocate_envelopes(
    session: Session, *, partner_id: str, transactions: Sequence[int]
) -> list[EnvelopeNumbers]:
    """Numbers for consecutive interchanges (one group each, ``transactions[i]`` sets) in one statement."""
    firsts = allocate_many(
        session,
        partner_id=partner_id,
        counts={
            ControlNumberKind.ISA13: len(transactions),
            ControlNumberKind.GS06: len(transactions),
            ControlNumberKind.ST02: sum(transactions),
        },
    )
    isa13, gs06, st02 = (firsts[k] for k in (ControlNumberKind.ISA13, ControlNumberKind.GS06,
                                              ControlNumberKind.ST02))
    envelopes = []
    for index, count in enumerate(transactions):
        envelopes.append(EnvelopeNumbers(isa13 + index, gs06 + index, tuple(range(st02, st02 + count))))
        st02 += count
    return envelopes


def peek_next(session: Session, *, partner_id: str, kind: ControlNumberKind) -> int:
    """The number the next allocation will return (1 for a fresh counter)."""
    counter = session.get(ControlCounter, (partner_id, kind), populate_existing=True)
    return 1 if counter is None else counter.next_value


def set_next(
    session: Session,
    *,
    partner_id: str,
    kind: ControlNumberKind,
    value: int,
    actor: str,
    allow_reuse: bool = False,
) -> None:
    """Admin: make ``value`` the next number; going backwards needs ``allow_reuse``."""
    if not 1 <= value <= MAX_VALUE:
        raise ControlNumberError(f"next value must be between 1 and {MAX_VALUE}")
    counter = _locked_counter(session, partner_id, kind)
    previous = counter.next_value
    if value < previous and not allow_reuse:
        raise ControlNumberError(
            f"{kind.value} {value} is below the next value {previous}; numbers would be reused"
        )
    counter.next_value = value
    append_event(
        session,
        event_type="control_number.set",
        actor=actor,
        partner_id=partner_id,
        subject_type="control_counter",
        subject_id=kind.value,
        data={"kind": kind.value, "previous_next": previous, "next": value},
    )
