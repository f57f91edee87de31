"""Phase 3's acknowledgments: the 997/999/TA1 we owe a received message, numbered and staged to send.

Each interchange's acks are built first with placeholder numbers (how many of each kind it
needs); a write's acks, or a whole batch's, are then numbered together, archived, and staged as
outbound messages with their interchanges and send outbox entries.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from gateway.processing.publisher import OUTBOX_SEND_MESSAGE
from gateway.processing.sending import SendPlan
from gateway.processing.writer import Writer
from gateway.processing.x12_parse import ParsedInterchange
from gateway.store.blobs import record_blobs
from gateway.store.control_numbers import allocate_many
from gateway.store.core import table_of
from gateway.store.enums import (
    AckStatus,
    ControlNumberKind,
    Direction,
    EnvelopeStatus,
    MessageStatus,
    Transport,
)
from gateway.store.models import Interchange, Message, OutboxEntry
from gateway.store.outbox import enqueued_row
from gateway.transports import OutboundMessage
from translators.acks import AckCode, Acknowledgment, build_acknowledgments

_OUTBOX = table_of(OutboxEntry)
_CONTROL_KINDS = {
    "interchange": ControlNumberKind.ISA13,
    "group": ControlNumberKind.GS06,
    "transaction": ControlNumberKind.ST02,
}
ENVELOPE_STATUS = {
    AckCode.ACCEPTED: EnvelopeStatus.ACCEPTED,
    AckCode.ACCEPTED_WITH_ERRORS: EnvelopeStatus.ACCEPTED_WITH_ERRORS,
    AckCode.PARTIALLY_ACCEPTED: EnvelopeStatus.PARTIALLY_ACCEPTED,
    AckCode.REJECTED: EnvelopeStatus.REJECTED,
}
_ACK_STATUS = {
    AckCode.ACCEPTED: AckStatus.ACCEPTED,
    AckCode.ACCEPTED_WITH_ERRORS: AckStatus.ACCEPTED_WITH_ERRORS,
    AckCode.PARTIALLY_ACCEPTED: AckStatus.PARTIALLY_ACCEPTED,
    AckCode.REJECTED: AckStatus.REJECTED,
}
_SENDING_TRANSPORTS = frozenset({Transport.AS2, Transport.SFTP, Transport.HTTP})


def acknowledgments(w: Writer, item: ParsedInterchange) -> tuple[list[Acknowledgment], Counter[str]]:
    """The acknowledgments of an interchange built with placeholder numbers, and how many of each kind."""
    profile = w.snap.profile
    if profile is None:
        return [], Counter()
    needed: Counter[str] = Counter()

    def count(kind: str) -> int:
        needed[kind] += 1
        return needed[kind]

    return build_acknowledgments(item.outcome, profile.profile.x12.acknowledgment, now=w.now,
                                 next_control_number=count), needed


def note_ack_statuses(w: Writer, interchange: dict[str, Any], acks: list[Acknowledgment]) -> None:
    """The status each ack gives its group (the numbers don't change it), known before any insert."""
    for ack in acks:
        status = _ACK_STATUS.get(ack.status, AckStatus.ACCEPTED)
        w.ack_statuses.append(status)
        group_row = w.group_rows.get((interchange["id"], ack.acknowledged_group or ""))
        if group_row is not None:
            group_row["ack_status"] = status


def store_acks(session: Session, writers: Sequence[Writer]) -> None:
    """Number the writers' acknowledgments (one statement per partner) and store each as an outbound message.

    Numbering locks the partner's control counters until commit, so it comes last: what follows
    is the acks' archiving and two statements (their blobs' rows; then every staged row at once).
    """
    needed: dict[str, Counter[str]] = {}
    for w in writers:
        if w.snap.profile is not None and w.pending is not None:
            for _, (_, counts) in w.pending.acks:
                needed.setdefault(w.snap.partner_id, Counter()).update(counts)
    firsts = {
        partner: allocate_many(session, partner_id=partner,
                               counts={_CONTROL_KINDS[kind]: n for kind, n in counts.items()})
        for partner, counts in sorted(needed.items())  # in one order everywhere: no deadlock
        if counts
    }
    handed: dict[str, Counter[str]] = {partner: Counter() for partner in firsts}
    numbered: list[tuple[Writer, ParsedInterchange, Acknowledgment]] = []
    for w in writers:
        profile, pending = w.snap.profile, w.pending
        if profile is None or pending is None or w.snap.partner_id not in firsts:
            continue
        first, given = firsts[w.snap.partner_id], handed[w.snap.partner_id]

        def next_number(kind: str, first: dict[Any, int] = first, given: Counter[str] = given) -> int:
            given[kind] += 1
            return first[_CONTROL_KINDS[kind]] + given[kind] - 1

        numbered += [
            (w, item, ack)
            for item, (placeholders, _) in pending.acks
            if placeholders
            for ack in build_acknowledgments(
                item.outcome, profile.profile.x12.acknowledgment, now=w.now, next_control_number=next_number
            )
        ]
    if not numbered:
        return
    blobs = writers[0].ctx.blobs.put_many([ack.text.encode("utf-8") for _, _, ack in numbered])
    record_blobs(session, blobs)
    for (w, item, ack), blob in zip(numbered, blobs, strict=True):
        transport = w.snap.transport if w.snap.transport in _SENDING_TRANSPORTS else Transport.HTTP
        _stage_ack(w, item, ack, blob, transport)


def ack_send_args(message_id: uuid.UUID) -> dict[str, Any]:
    """The send task's arguments for an ack: it carries no documents, so nothing to settle after it."""
    return {"message_id": str(message_id), "acknowledgment": True}


def _stage_ack(
    w: Writer, item: ParsedInterchange, ack: Acknowledgment, blob: Any, transport: Transport
) -> None:
    isa13 = f"{ack.interchange_control_number:09d}"
    filename = f"{ack.kind}_{isa13}.x12"
    ack_message_id = uuid.uuid4()
    w.stage(
        table_of(Message),
        {
            "id": ack_message_id,
            "direction": Direction.OUTBOUND,
            "transport": transport,
            "partner_id": w.snap.partner_id,
            "status": MessageStatus.QUEUED,
            "content_sha256": blob.sha256,
            "size": blob.size,
            "content_type": "application/edi-x12",
            "filename": filename,
            "correlation_id": w.snap.correlation_id,
            "received_at": w.now,
            "updated_at": w.now,
        },
    )
    header = item.outcome.header
    w.stage(
        table_of(Interchange),
        {
            "id": uuid.uuid4(),
            "message_id": ack_message_id,
            "partner_id": w.snap.partner_id,
            "direction": Direction.OUTBOUND,
            "position": 0,
            "sender_qualifier": header.receiver_qualifier[:2],
            "sender_id": header.receiver_id[:15],
            "receiver_qualifier": header.sender_qualifier[:2],
            "receiver_id": header.sender_id[:15],
            "control_number": isa13,
            "version": header.version[:5],
            "usage_indicator": header.usage[:1] or "P",
            "ack_requested": False,
            "interchange_date": w.now.strftime("%y%m%d"),
            "status": ENVELOPE_STATUS.get(ack.status, EnvelopeStatus.ACCEPTED),
            "is_duplicate": False,
            "duplicate_of_id": None,
            "correlation_id": w.snap.correlation_id,
            "created_at": w.now,
        },
    )
    w.stage(
        _OUTBOX,
        enqueued_row(OUTBOX_SEND_MESSAGE, ack_message_id, ack_send_args(ack_message_id),
                     now=w.now, lease=w.ctx.lease),
    )
    w.outcome.ack_message_ids.append(ack_message_id)
    if w.snap.profile is not None:
        outbound = OutboundMessage(
            str(ack_message_id), w.snap.partner_id, "application/edi-x12", filename, w.snap.correlation_id
        )
        w.outcome.ack_plans.append(SendPlan(outbound, transport.value, blob.sha256, w.snap.profile.profile))
    w.ack_events.append(
        {
            "message_id": ack_message_id,
            "kind": ack.kind,
            "status": ack.status,
            "interchange_control_number": isa13,
            "acknowledged_interchange": ack.acknowledged_interchange,
            "acknowledged_group": ack.acknowledged_group,
        }
    )
