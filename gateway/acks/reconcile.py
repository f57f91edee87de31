"""Reconcile inbound 997/999 and TA1 acknowledgments with what we sent.

A 997/999 is matched by partner + GS06 (AK102), each AK2 by ST02 within that group; the
group's and each set's expectation move to accepted / accepted_with_errors /
partially_accepted / rejected with the error detail in ``details``. A TA1 is matched by
partner + ISA13 (TA101); a rejecting TA1 rejects every open expectation of the interchange.
An acknowledgment nothing matches is flagged (event ``ack.unmatched``, listed by
``GET /acks/unmatched``); the translators never acknowledge an acknowledgment.

Called from inbound processing inside its transaction, after its control numbers are
allocated, so locks are taken in the same order everywhere (counters, then rows, then the
event chain).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.acks.expectations import OPEN_STATUSES, append_expectation_event
from gateway.acks.notify import (
    ACK_ACCEPTED,
    ACK_REJECTED,
    ACK_UNMATCHED,
    expectation_payload,
    notify,
    subject_for,
)
from gateway.deliveries.service import RetryPolicy
from gateway.store.enums import AckStatus, Direction, EnvelopeStatus
from gateway.store.events import append_message_event
from gateway.store.models import AckExpectation, FunctionalGroup, Interchange, Message, TransactionSet
from translators.acks import FunctionalAck, SetAck

SEVERITY = [
    AckStatus.PENDING,
    AckStatus.ACCEPTED,
    AckStatus.ACCEPTED_WITH_ERRORS,
    AckStatus.PARTIALLY_ACCEPTED,
    AckStatus.OVERDUE,
    AckStatus.REJECTED,
]
_SET_STATUS = {
    "A": AckStatus.ACCEPTED,
    "E": AckStatus.ACCEPTED_WITH_ERRORS,
    "R": AckStatus.REJECTED,
    "M": AckStatus.REJECTED,
    "W": AckStatus.REJECTED,
    "X": AckStatus.REJECTED,
}
_ENVELOPE = {
    AckStatus.ACCEPTED: EnvelopeStatus.ACCEPTED,
    AckStatus.ACCEPTED_WITH_ERRORS: EnvelopeStatus.ACCEPTED_WITH_ERRORS,
    AckStatus.PARTIALLY_ACCEPTED: EnvelopeStatus.PARTIALLY_ACCEPTED,
    AckStatus.REJECTED: EnvelopeStatus.REJECTED,
}


@dataclass
class ReconcileOutcome:
    """What reconciling one inbound message's acknowledgments did."""

    matched: list[uuid.UUID] = field(default_factory=list)  # group expectation ids
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    delivery_ids: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True)
class InboundAcks:
    """The acknowledgments found in one inbound interchange."""

    functional: Sequence[FunctionalAck]
    ta1: Sequence[dict[str, Any]]


def _number(value: str | None) -> str:
    """A control number compared by value: ``000123`` and ``123`` are the same."""
    text = (value or "").strip()
    return str(int(text)) if text.isdigit() else text


def set_status(set_ack: SetAck | None, group_status: AckStatus) -> AckStatus:
    """A set's status from its AK5/IK5; a set the ack does not list follows the group."""
    if set_ack is not None and set_ack.status:
        return _SET_STATUS.get(set_ack.status, AckStatus.REJECTED)
    return AckStatus.REJECTED if group_status is AckStatus.REJECTED else AckStatus.ACCEPTED


def set_errors(set_ack: SetAck) -> list[dict[str, Any]]:
    """The AK3/AK4 (IK3/IK4/CTX) detail and AK5 codes of one set as JSON-ready dicts."""
    errors: list[dict[str, Any]] = [{"level": "transaction", "code": c} for c in set_ack.codes]
    for segment in set_ack.segments:
        errors.append(
            {
                "level": "segment",
                "segment": segment.segment_tag,
                "position": segment.segment_position,
                "loop": segment.loop_id,
                "code": segment.code,
                "elements": [e.model_dump(mode="json", exclude={"contexts"}) for e in segment.elements],
            }
        )
    return errors


def reconcile_inbound(
    session: Session,
    *,
    partner_id: str,
    message: Message,
    interchanges: Iterable[InboundAcks],
    policy: RetryPolicy,
    now: datetime,
) -> ReconcileOutcome:
    """Reconcile every 997/999 and TA1 of one inbound message; deliveries are returned to publish."""
    outcome = ReconcileOutcome()
    for item in interchanges:
        for ta1 in item.ta1:
            _reconcile_ta1(session, partner_id, message, ta1, policy, now, outcome)
        for ack in item.functional:
            reconcile_functional_ack(
                session,
                partner_id=partner_id,
                message=message,
                ack=ack,
                policy=policy,
                now=now,
                outcome=outcome,
            )
    return outcome


def reconcile_functional_ack(
    session: Session,
    *,
    partner_id: str,
    message: Message,
    ack: FunctionalAck,
    policy: RetryPolicy,
    now: datetime,
    outcome: ReconcileOutcome | None = None,
) -> ReconcileOutcome:
    """Apply one 997/999 to the expectations of the group it answers (partner + GS06 + ST02)."""
    outcome = outcome or ReconcileOutcome()
    candidates = session.scalars(
        select(AckExpectation)
        .where(
            AckExpectation.partner_id == partner_id,
            AckExpectation.group_control_number == _number(ack.group_control_number),
            AckExpectation.transaction_id.is_(None),
        )
        .order_by(AckExpectation.created_at.desc())
        .with_for_update()
    ).all()
    groups = [g for g in candidates if g.status in OPEN_STATUSES] or candidates[:1]
    if not groups:
        _unmatched(
            session,
            message,
            now,
            outcome,
            {
                "kind": ack.kind,
                "functional_id": ack.functional_id,
                "group_control_number": ack.group_control_number,
                "ack_control_number": ack.control_number,
                "status": ack.status,
            },
        )
        return outcome
    for group in groups:
        _apply(session, group, ack, message, policy, now, outcome)
    return outcome


def _apply(
    session: Session,
    group: AckExpectation,
    ack: FunctionalAck,
    message: Message,
    policy: RetryPolicy,
    now: datetime,
    outcome: ReconcileOutcome,
) -> None:
    status = AckStatus(ack.outcome)
    previous = group.status
    sets = session.scalars(
        select(AckExpectation)
        .where(AckExpectation.group_id == group.group_id, AckExpectation.transaction_id.is_not(None))
        .with_for_update()
    ).all()
    by_number = {_number(s.control_number): s for s in ack.sets}
    problems = list(ack.problems)
    if ack.functional_id and ack.functional_id != group.functional_id:
        problems.append(f"AK101 {ack.functional_id} does not match the group's GS01 {group.functional_id}")
    listed = set()
    for row in sets:
        key = _number(row.transaction_control_number)
        set_ack = by_number.get(key)
        if set_ack is not None:
            listed.add(key)
        row.status = set_status(set_ack, status)
        row.acknowledged_at = now
        row.ack_message_id = message.id
        row.details = {
            **row.details,
            "errors": set_errors(set_ack) if set_ack else [],
            "ak5": set_ack.status if set_ack else None,
        }
    problems.extend(f"AK2 {n} answers no transaction set of this group" for n in by_number if n not in listed)
    group.status = status
    group.acknowledged_at = now
    group.ack_message_id = message.id
    group.details = {
        **group.details,
        "ack": {
            "kind": ack.kind,
            "control_number": ack.control_number,
            "status": ack.status,
            "included": ack.included,
            "received": ack.received,
            "accepted": ack.accepted,
            "version": ack.version,
        },
        "errors": [{"level": "group", "code": c} for c in ack.group_codes],
        "problems": problems,
        "previous_status": previous.value,
    }
    _mirror_on_envelope(session, group, sets)
    event_type = (
        ACK_ACCEPTED if status in (AckStatus.ACCEPTED, AckStatus.ACCEPTED_WITH_ERRORS) else ACK_REJECTED
    )
    payload = expectation_payload(session, group, list(sets))
    append_expectation_event(
        session,
        group,
        event_type="ack.reconciled",
        actor="worker",
        data={
            "status": status.value,
            "previous_status": previous.value,
            "ack_message_id": str(message.id),
            "kind": ack.kind,
            "group_control_number": group.group_control_number,
            "rejected_sets": [s.transaction_control_number for s in sets if s.status is AckStatus.REJECTED],
            "problems": problems[:10],
        },
    )
    outcome.matched.append(group.id)
    outcome.delivery_ids.extend(
        notify(
            session,
            event_type=event_type,
            subject_id=subject_for(group.id, message.id, ack.control_number),
            partner_id=group.partner_id,
            payload=payload,
            message_id=group.message_id,
            document_id=None,
            correlation_id=group.correlation_id,
            policy=policy,
            now=now,
        )
    )


def _mirror_on_envelope(session: Session, group: AckExpectation, sets: Sequence[AckExpectation]) -> None:
    """Copy the outcome to the functional group, its sets and the outbound message's ack status."""
    group_row = session.get(FunctionalGroup, group.group_id)
    if group_row is not None:
        group_row.ack_status = group.status
    statuses = {s.transaction_id: s.status for s in sets}
    if statuses:
        for ts in session.scalars(select(TransactionSet).where(TransactionSet.id.in_(list(statuses)))):
            ts.status = _ENVELOPE.get(statuses[ts.id], ts.status)
    refresh_message_ack_status(session, group.message_id)


def refresh_message_ack_status(session: Session, message_id: uuid.UUID) -> None:
    """An outbound message's ack status: the worst of its groups' expectations."""
    statuses = session.scalars(
        select(AckExpectation.status).where(
            AckExpectation.message_id == message_id, AckExpectation.transaction_id.is_(None)
        )
    ).all()
    message = session.get(Message, message_id)
    if message is not None and statuses:
        message.ack_status = max(statuses, key=SEVERITY.index)


def _reconcile_ta1(
    session: Session,
    partner_id: str,
    message: Message,
    ta1: dict[str, Any],
    policy: RetryPolicy,
    now: datetime,
    outcome: ReconcileOutcome,
) -> None:
    control = str(ta1.get("control_number") or "")
    if not control:
        return  # unreadable TA1: reported as an interchange error by the translators
    control = control.zfill(9) if control.isdigit() else control
    ours = session.scalars(
        select(Interchange.id).where(
            Interchange.partner_id == partner_id,
            Interchange.direction == Direction.OUTBOUND,
            Interchange.control_number == control,
        )
    ).first()
    if ours is None:
        _unmatched(session, message, now, outcome, {"kind": "TA1", **ta1})
        return
    groups = session.scalars(
        select(AckExpectation)
        .where(
            AckExpectation.partner_id == partner_id,
            AckExpectation.interchange_control_number == control,
            AckExpectation.transaction_id.is_(None),
        )
        .with_for_update()
    ).all()
    code = str(ta1.get("ack_code") or "")
    for group in groups:
        group.details = {**group.details, "ta1": {**ta1, "ack_message_id": str(message.id)}}
        if code != "R" or group.status not in OPEN_STATUSES:
            continue
        previous = group.status
        group.status = AckStatus.REJECTED
        group.acknowledged_at = now
        group.ack_message_id = message.id
        group.details = {**group.details, "errors": [{"level": "interchange", "code": ta1.get("note_code")}]}
        sets = session.scalars(
            select(AckExpectation)
            .where(AckExpectation.group_id == group.group_id, AckExpectation.transaction_id.is_not(None))
            .with_for_update()
        ).all()
        for row in sets:
            row.status, row.acknowledged_at, row.ack_message_id = AckStatus.REJECTED, now, message.id
        _mirror_on_envelope(session, group, sets)
        append_expectation_event(
            session,
            group,
            event_type="ack.reconciled",
            actor="worker",
            data={
                "status": AckStatus.REJECTED.value,
                "previous_status": previous.value,
                "kind": "TA1",
                "ack_message_id": str(message.id),
                "note_code": ta1.get("note_code"),
            },
        )
        outcome.matched.append(group.id)
        outcome.delivery_ids.extend(
            notify(
                session,
                event_type=ACK_REJECTED,
                subject_id=subject_for(group.id, message.id, "TA1"),
                partner_id=partner_id,
                payload=expectation_payload(session, group, list(sets)),
                message_id=group.message_id,
                document_id=None,
                correlation_id=group.correlation_id,
                policy=policy,
                now=now,
            )
        )


def _unmatched(
    session: Session,
    message: Message,
    now: datetime,
    outcome: ReconcileOutcome,
    data: dict[str, Any],
) -> None:
    outcome.unmatched.append(data)
    data = {**data, "received_at": now.isoformat()}
    append_message_event(session, message, event_type=ACK_UNMATCHED, actor="worker", data=data)
