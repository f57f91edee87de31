"""Checking a timeline page against the hash chain without walking the whole trail.

A short span (the page's first to last event) is walked in full, starting from the event
before it, so every link and hash in between is recomputed. A long span (a message replayed
months later) checks only the listed events and the links to their predecessors.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.messages.schemas import ChainCheck
from gateway.store.events import GENESIS_HASH, compute_hash, event_content
from gateway.store.models import Event

MAX_RANGE_EVENTS = 5000
_BATCH = 1000


def _check_event(event: Event, prev_hash: str, breaks: list[str]) -> None:
    if event.prev_hash != prev_hash:
        breaks.append(f"event {event.id}: prev_hash does not match the previous event")
    if compute_hash(event.prev_hash, event_content(event)) != event.hash:
        breaks.append(f"event {event.id}: content does not match its hash (altered)")


def _previous_hash(session: Session, event_id: int) -> str | None:
    if event_id <= 1:
        return GENESIS_HASH
    return session.scalar(select(Event.hash).where(Event.id == event_id - 1))


def _check_range(session: Session, first: int, last: int) -> list[str]:
    breaks: list[str] = []
    prev_hash = _previous_hash(session, first)
    if prev_hash is None:
        breaks.append(f"event {first - 1} is missing")
    expected = first
    while expected <= last:
        batch = session.scalars(
            select(Event).where(Event.id >= expected, Event.id <= last).order_by(Event.id).limit(_BATCH)
        ).all()
        if not batch:
            breaks.append(f"events {expected}..{last} are missing")
            break
        for event in batch:
            if event.id != expected:
                breaks.append(f"events {expected}..{event.id - 1} are missing")
                prev_hash = None
            if prev_hash is not None:
                _check_event(event, prev_hash, breaks)
            elif compute_hash(event.prev_hash, event_content(event)) != event.hash:
                breaks.append(f"event {event.id}: content does not match its hash (altered)")
            prev_hash, expected = event.hash, event.id + 1
    return breaks


def _check_each(session: Session, events: Sequence[Event]) -> list[str]:
    breaks: list[str] = []
    wanted = {event.id - 1 for event in events if event.id > 1}
    rows = session.execute(select(Event.id, Event.hash).where(Event.id.in_(wanted)))
    hashes: dict[int, str] = {ident: digest for ident, digest in rows}
    hashes[0] = GENESIS_HASH
    for event in events:
        prev_hash = hashes.get(event.id - 1)
        if prev_hash is None:
            breaks.append(f"event {event.id - 1} is missing")
            prev_hash = event.prev_hash
        _check_event(event, prev_hash, breaks)
    return breaks


def check_events(session: Session, events: Sequence[Event]) -> ChainCheck:
    """Verify the listed events (and the span between them when short) against the chain."""
    if not events:
        return ChainCheck(mode="none", first_event_id=None, last_event_id=None, breaks=[])
    first, last = events[0].id, events[-1].id
    if last - first < MAX_RANGE_EVENTS:
        return ChainCheck(mode="range", first_event_id=first, last_event_id=last,
                          breaks=_check_range(session, first, last))
    return ChainCheck(mode="events", first_event_id=first, last_event_id=last,
                      breaks=_check_each(session, events))
