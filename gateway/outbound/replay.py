"""Resend an outbound message (``POST /messages/{id}/replay``) with the same or new control numbers.

The replay row (transport ``replay``, linked by ``replay_of_id``) is prepared by the send task
before it is sent: with ``new`` numbers the archived X12 is renumbered (ISA13/IEA02, GS06/GE02,
ST02/SE02 from the partner's counters, in this transaction) and archived as the replay's own
blob; with ``same`` the bytes go out unchanged. Either way the replay gets its own envelope
rows and acknowledgment expectations and is sent over the original's transport.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from gateway.acks.expectations import expectation_rows, plan_for
from gateway.archive.blob_store import BlobStore
from gateway.outbound.routing import outbound_transport
from gateway.processing.profiles import load_profile
from gateway.secrets import SecretBox
from gateway.store.blobs import record_blob
from gateway.store.control_numbers import allocate
from gateway.store.core import insert_tables, table_of
from gateway.store.enums import (
    AckStatus,
    ControlNumberKind,
    Direction,
    EnvelopeStatus,
    MessageStatus,
    Transport,
)
from gateway.store.events import append_message_event
from gateway.store.models import AckExpectation, FunctionalGroup, Interchange, Message, TransactionSet
from translators.settings import EnvelopeSettings

_ISA_LENGTH = 106
_INTERCHANGES = table_of(Interchange)
_GROUPS = table_of(FunctionalGroup)
_SETS = table_of(TransactionSet)
_EXPECTATIONS = table_of(AckExpectation)
_COPIED = (_INTERCHANGES, _GROUPS, _SETS, _EXPECTATIONS)  # parents first


class RenumberError(ValueError):
    """The archived bytes are not an X12 interchange we can renumber."""


@dataclass(frozen=True)
class Renumbered:
    """The renumbered X12 and the old → new control numbers, in document order."""

    text: str
    interchanges: list[tuple[str, str]]
    groups: list[tuple[str, str]]
    transactions: list[tuple[str, str]]


def count_envelopes(text: str) -> tuple[int, int, int]:
    """How many ISA, GS and ST segments the X12 holds."""
    _, segments = _split(text)
    tags = [s.split(text[3], 1)[0].strip() for s, _ in segments]
    return tags.count("ISA"), tags.count("GS"), tags.count("ST")


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    if not text.startswith("ISA") or len(text) < _ISA_LENGTH:
        raise RenumberError("not an X12 interchange")
    terminator = text[_ISA_LENGTH - 1]
    parts = re.split(f"({re.escape(terminator)}\\s*)", text)
    segments = [(parts[i], parts[i + 1] if i + 1 < len(parts) else "") for i in range(0, len(parts), 2)]
    return terminator, [(s, sep) for s, sep in segments if s.strip()]


def renumber(text: str, *, isa13: int, gs06: int, st02: int) -> Renumbered:
    """The X12 with control numbers counting up from those given (trailers follow their headers)."""
    _, segments = _split(text)
    element = text[3]
    out: list[str] = []
    changes: dict[str, list[tuple[str, str]]] = {"ISA": [], "GS": [], "ST": []}
    current = {"ISA": "", "GS": "", "ST": ""}
    counters = {"ISA": isa13, "GS": gs06, "ST": st02}
    trailers = {"IEA": ("ISA", 2), "GE": ("GS", 2), "SE": ("ST", 2)}
    for segment, separator in segments:
        lead = segment[: len(segment) - len(segment.lstrip())]
        elements = segment.lstrip().split(element)
        tag = elements[0]
        if tag in counters:
            position = {"ISA": 13, "GS": 6, "ST": 2}[tag]
            value = counters[tag]
            counters[tag] += 1
            new = f"{value:09d}" if tag == "ISA" else f"{value:04d}" if tag == "ST" else str(value)
            if len(elements) <= position:
                raise RenumberError(f"{tag} has no element {position}")
            changes[tag].append((elements[position], new))
            elements[position] = current[tag] = new
        elif tag in trailers:
            owner, position = trailers[tag]
            if len(elements) > position:
                elements[position] = current[owner]
        out.append(lead + element.join(elements) + separator)
    return Renumbered("".join(out), changes["ISA"], changes["GS"], changes["ST"])


def prepare_outbound_replay(
    session: Session,
    message_id: uuid.UUID,
    *,
    blobs: BlobStore,
    box: SecretBox | None,
    control_numbers: str | None,
    now: datetime,
) -> bool:
    """Make a queued outbound replay sendable (renumbered if asked); False when there is nothing to do."""
    message = session.execute(
        select(Message)
        .where(Message.id == message_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if (
        message is None
        or message.partner_id is None
        or message.replay_of_id is None
        or message.direction is not Direction.OUTBOUND
        or message.status is not MessageStatus.QUEUED
        or message.transport is not Transport.REPLAY
    ):
        return False
    original = session.get(Message, message.replay_of_id)
    profile = load_profile(session, message.partner_id, box).profile
    policy = control_numbers or "new"
    with blobs.open(message.content_sha256) as handle:
        text = handle.read().decode("utf-8")
    interchanges = _children(session, _INTERCHANGES, "message_id", [message.replay_of_id]).get(
        message.replay_of_id, []
    )
    mapping: dict[str, dict[str, str]] = {"ISA": {}, "GS": {}, "ST": {}}
    if policy == "new":
        n_isa, n_gs, n_st = count_envelopes(text)
        partner = message.partner_id
        result = renumber(
            text,
            isa13=allocate(session, partner_id=partner, kind=ControlNumberKind.ISA13, count=max(n_isa, 1)),
            gs06=allocate(session, partner_id=partner, kind=ControlNumberKind.GS06, count=max(n_gs, 1)),
            st02=allocate(session, partner_id=partner, kind=ControlNumberKind.ST02, count=max(n_st, 1)),
        )
        blob = blobs.put_bytes(result.text.encode("utf-8"))
        record_blob(session, blob)
        message.content_sha256, message.size = blob.sha256, blob.size
        mapping = {
            "ISA": dict(result.interchanges),
            "GS": dict(result.groups),
            "ST": dict(result.transactions),
        }
    transport = (
        original.transport
        if original is not None and original.transport is not Transport.REPLAY
        else outbound_transport(profile)
    )
    message.transport = transport
    _copy_envelopes(session, message, interchanges, mapping, profile_x12=profile.x12, now=now)
    append_message_event(
        session,
        message,
        event_type="message.replay_prepared",
        actor="worker",
        data={
            "replay_of_id": str(message.replay_of_id),
            "control_numbers": policy,
            "transport": transport.value,
            "renumbered": {k: v for k, v in mapping.items() if v},
            "sha256": message.content_sha256,
        },
    )
    return True


def _copy_envelopes(
    session: Session,
    message: Message,
    interchanges: list[dict[str, Any]],
    mapping: dict[str, dict[str, str]],
    *,
    profile_x12: EnvelopeSettings,
    now: datetime,
) -> None:
    """The replay's own envelope rows (renumbered per ``mapping``) and ack expectations, in one insert."""
    fresh = {"status": EnvelopeStatus.PENDING, "correlation_id": message.correlation_id, "created_at": now}
    staged: dict[Table, list[dict[str, Any]]] = {table: [] for table in _COPIED}
    old_groups = _children(session, _GROUPS, "interchange_id", [old["id"] for old in interchanges])
    old_sets = _children(session, _SETS, "group_id", [g["id"] for gs in old_groups.values() for g in gs])
    for old in interchanges:
        interchange = _copied(old, fresh) | {
            "message_id": message.id,
            "direction": Direction.OUTBOUND,
            "control_number": mapping["ISA"].get(old["control_number"], old["control_number"]),
            "interchange_date": now.strftime("%y%m%d"),
            "is_duplicate": False,
            "duplicate_of_id": None,
        }
        staged[_INTERCHANGES].append(interchange)
        for old_group in old_groups.get(old["id"], []):
            plan = plan_for(profile_x12, old_group["version"]) if old_group["functional_id"] != "FA" else None
            group = _copied(old_group, fresh) | {
                "interchange_id": interchange["id"],
                "control_number": mapping["GS"].get(old_group["control_number"], old_group["control_number"]),
                "ack_status": AckStatus.PENDING if plan else None,
            }
            sets = [
                _copied(ts, fresh) | {
                    "group_id": group["id"],
                    "control_number": mapping["ST"].get(ts["control_number"], ts["control_number"]),
                    "errors": [],
                }
                for ts in old_sets.get(old_group["id"], [])
            ]
            staged[_GROUPS].append(group)
            staged[_SETS].extend(sets)
            if plan is not None:
                message.ack_status = AckStatus.PENDING
                staged[_EXPECTATIONS].extend(
                    expectation_rows(
                        plan,
                        message_id=message.id,
                        interchange_control_number=interchange["control_number"],
                        group=group,
                        transactions=sets,
                        now=now,
                    )
                )
    insert_tables(session, [(table, staged[table]) for table in _COPIED])


def _copied(old: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, Any]:
    return {**old, **fresh, "id": uuid.uuid4()}


def _children(
    session: Session, table: Table, parent: str, parent_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Rows of ``table`` whose ``parent`` column is one of ``parent_ids``, by parent, in position order."""
    found: dict[uuid.UUID, list[dict[str, Any]]] = {}
    if not parent_ids:
        return found
    rows = session.execute(
        select(table).where(table.c[parent].in_(parent_ids)).order_by(table.c.position)
    ).mappings()
    for row in rows:
        found.setdefault(row[parent], []).append(dict(row))
    return found
