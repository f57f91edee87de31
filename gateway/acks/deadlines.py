"""Business deadlines from partner profiles (beyond acknowledgments): orders at risk.

Rules (``deadlines`` in the profile, see ``partner_profiles.schema.DeadlineRule``):

* ``within``: a ``document`` (855) is due ``hours`` after the ``of`` document (850) with the same
  PO number; "at risk" ``warn_hours`` before the due time (default a quarter of the window),
  "breached" after it.
* ``before``: a ``document`` (856) must exist for a PO before the ``before`` document (810) is
  sent; checked when that document is submitted.
* ``inactivity``: "no ``document`` (850) for ``days``" from the partner is itself a problem.

Documents are linked by their ``po_number`` references (``document_references``). Each alert is
raised once (``deadline_alerts``), as an event and a ``deadline.at_risk``/``deadline.breached``
webhook; ``GET /reports/at-risk`` computes the current list live.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session, aliased

from gateway.acks.notify import DEADLINE_AT_RISK, DEADLINE_BREACHED, notify
from gateway.deliveries.service import RetryPolicy
from gateway.store.events import append_event
from gateway.store.models import DeadlineAlert, Document, DocumentReference, Partner, PartnerProfileVersion
from partner_profiles.schema import DeadlineRule, PartnerProfile

LOOKBACK = timedelta(days=60)  # orders older than this are not tracked any more
PO = "po_number"
AT_RISK, BREACHED = "at_risk", "breached"


@dataclass(frozen=True)
class AtRisk:
    """One order (or partner, for inactivity) at risk of missing, or past, a business deadline."""

    partner_id: str
    rule: str
    level: str
    subject: str
    expected: str
    due_at: datetime | None
    started_at: datetime | None
    document_id: uuid.UUID | None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """JSON-ready, with the seconds left (negative: late)."""
        return {
            "partner_id": self.partner_id,
            "rule": self.rule,
            "level": self.level,
            "po_number": self.subject if self.subject and not self.subject.startswith("since:") else None,
            "subject": self.subject,
            "expected_document": self.expected,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "seconds_left": round((self.due_at - now).total_seconds()) if self.due_at else None,
            "document_id": str(self.document_id) if self.document_id else None,
        }


def partner_rules(session: Session, partner_id: str | None = None) -> dict[str, list[DeadlineRule]]:
    """The deadline rules of every live partner's current profile (or of one partner)."""
    query = (
        select(Partner.id, PartnerProfileVersion.profile)
        .join(
            PartnerProfileVersion,
            (PartnerProfileVersion.partner_id == Partner.id)
            & (PartnerProfileVersion.version == Partner.current_version),
        )
        .where(Partner.deleted_at.is_(None))
    )
    if partner_id is not None:
        query = query.where(Partner.id == partner_id)
    found: dict[str, list[DeadlineRule]] = {}
    for pid, profile in session.execute(query):
        raw = (profile or {}).get("deadlines") or []
        try:
            rules = [DeadlineRule.model_validate(r) for r in raw]
        except ValidationError:
            continue
        if rules:
            found[pid] = rules
    return found


def _warn(rule: DeadlineRule, window: timedelta) -> timedelta:
    return timedelta(hours=rule.warn_hours) if rule.warn_hours is not None else window / 4


def _level(now: datetime, due: datetime, warn: timedelta) -> str | None:
    if now >= due:
        return BREACHED
    return AT_RISK if now >= due - warn else None


def _within(session: Session, partner_id: str, rule: DeadlineRule, now: datetime) -> list[AtRisk]:
    assert rule.hours is not None and rule.of is not None
    window = timedelta(hours=rule.hours)
    rows = _documents_by_po(session, partner_id, rule.of, now,
                            ~_same_po_exists(partner_id, rule.document))
    items = []
    for document_id, created_at, po in rows:
        due = created_at + window
        level = _level(now, due, _warn(rule, window))
        if level is not None:
            items.append(
                AtRisk(partner_id, rule.name, level, po, rule.document, due, created_at, document_id)
            )
    return items


def _before(session: Session, partner_id: str, rule: DeadlineRule, now: datetime) -> list[AtRisk]:
    assert rule.before is not None
    rows = _documents_by_po(
        session, partner_id, rule.before, now,
        ~_same_po_exists(partner_id, rule.document, lambda other: other.created_at <= Document.created_at))
    return [
        AtRisk(partner_id, rule.name, BREACHED, po, rule.document, created_at, created_at, document_id)
        for document_id, created_at, po in rows
    ]


def _inactivity(session: Session, partner_id: str, rule: DeadlineRule, now: datetime) -> list[AtRisk]:
    assert rule.days is not None
    window = timedelta(days=rule.days)
    last = session.scalar(
        select(func.max(Document.created_at)).where(
            Document.partner_id == partner_id, Document.document_type == rule.document
        )
    )
    partner = session.get(Partner, partner_id)
    since = last or (partner.created_at if partner else now)
    due = since + window
    level = _level(now, due, _warn(rule, window))
    if level is None:
        return []
    return [
        AtRisk(partner_id, rule.name, level, f"since:{since.isoformat()}", rule.document, due, since, None)
    ]


_EVALUATORS = {"within": _within, "before": _before, "inactivity": _inactivity}


def at_risk(session: Session, *, now: datetime, partner_id: str | None = None) -> list[AtRisk]:
    """Everything at risk or breached now, most urgent first."""
    items: list[AtRisk] = []
    for pid, rules in sorted(partner_rules(session, partner_id).items()):
        for rule in rules:
            items.extend(_EVALUATORS[rule.rule](session, pid, rule, now))
    far = now + timedelta(days=36500)
    return sorted(items, key=lambda i: (i.level != BREACHED, i.due_at or far, i.partner_id, i.subject))


def raise_alert(session: Session, item: AtRisk, *, policy: RetryPolicy, now: datetime) -> list[uuid.UUID]:
    """Record the alert once, with an event and a webhook; delivery ids (empty when known)."""
    known = session.scalars(
        select(DeadlineAlert.id).where(
            DeadlineAlert.partner_id == item.partner_id,
            DeadlineAlert.rule == item.rule,
            DeadlineAlert.subject == item.subject,
            DeadlineAlert.level == item.level,
        )
    ).first()
    if known is not None:
        return []
    alert = DeadlineAlert(
        id=uuid.uuid4(),
        partner_id=item.partner_id,
        rule=item.rule[:100],
        subject=item.subject[:100],
        level=item.level,
        document_id=item.document_id,
        due_at=item.due_at,
        details=item.to_dict(now),
        created_at=now,
    )
    session.add(alert)
    session.flush()
    event_type = DEADLINE_BREACHED if item.level == BREACHED else DEADLINE_AT_RISK
    append_event(
        session,
        event_type=event_type,
        actor="deadlines",
        partner_id=item.partner_id,
        subject_type="deadline_alert",
        subject_id=alert.id,
        data=item.to_dict(now),
    )
    return notify(
        session,
        event_type=event_type,
        subject_id=alert.id,
        partner_id=item.partner_id,
        payload={"document_type": item.expected, "source": {"rule": item.rule}, "data": item.to_dict(now)},
        message_id=None,
        document_id=item.document_id,
        correlation_id=alert.id.hex,
        policy=policy,
        now=now,
    )


def check_deadlines(session: Session, *, policy: RetryPolicy, now: datetime) -> list[uuid.UUID]:
    """The beat's pass: raise every new at-risk or breached alert; delivery ids to publish."""
    deliveries: list[uuid.UUID] = []
    for item in at_risk(session, now=now):
        deliveries.extend(raise_alert(session, item, policy=policy, now=now))
    return deliveries


def check_document_order(
    session: Session,
    *,
    profile: PartnerProfile,
    document_type: str,
    document_id: uuid.UUID,
    policy: RetryPolicy,
    now: datetime,
) -> list[uuid.UUID]:
    """``before`` rules when a document is submitted: an 810 without an earlier 856 is breached at once."""
    deliveries: list[uuid.UUID] = []
    for rule in profile.deadlines:
        if rule.rule == "before" and rule.before == document_type:
            for item in _before(session, profile.id, rule, now):
                if item.document_id == document_id:
                    deliveries.extend(raise_alert(session, item, policy=policy, now=now))
    return deliveries


def _same_po_exists(partner_id: str, document_type: str,
                    condition: Callable[[Any], Any] | None = None) -> Any:
    """EXISTS: a ``document_type`` of this partner carries the outer row's PO number."""
    other = aliased(Document)
    other_ref = aliased(DocumentReference)
    clauses = [other.partner_id == partner_id, other.document_type == document_type,
               other_ref.qualifier == PO, other_ref.value == DocumentReference.value]
    if condition is not None:
        clauses.append(condition(other))
    return select(other_ref.id).join(other, other.id == other_ref.document_id).where(*clauses).exists()


def _documents_by_po(session: Session, partner_id: str, document_type: str, now: datetime,
                     *conditions: Any) -> Sequence[Row[uuid.UUID, datetime, str]]:
    """(document id, created_at, PO number) of the partner's recent ``document_type``s, oldest first."""
    return session.execute(
        select(Document.id, Document.created_at, DocumentReference.value)
        .join(DocumentReference, DocumentReference.document_id == Document.id)
        .where(Document.partner_id == partner_id, Document.document_type == document_type,
               DocumentReference.qualifier == PO, Document.created_at >= now - LOOKBACK, *conditions)
        .order_by(Document.created_at)
    ).all()
