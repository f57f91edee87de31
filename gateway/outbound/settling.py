"""What recording a send also does for outbound documents: sent or failed, the partner's ack
clock restarted, and ``document.sent``/``document.failed`` webhooks for the ERP."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, literal, select, update
from sqlalchemy.orm import Session

from gateway.acks.expectations import RESTART_CLOCKS, due_times, restart_clock
from gateway.acks.notify import DOCUMENT_SENT, delivery_news, subject_for
from gateway.deliveries.service import (
    EndpointRef,
    NewDelivery,
    RetryPolicy,
    create_deliveries,
    subscribed_endpoints,
)
from gateway.processing.profiles import ProfileMissing, load_profile
from gateway.processing.sending import SettledMessage
from gateway.secrets import SecretBox
from gateway.store.core import run, table_of
from gateway.store.enums import Direction, DocumentStatus, MessageStatus
from gateway.store.models import Document
from partner_profiles.schema import PartnerProfile

DOCUMENT_FAILED = "document.failed"
_DOCUMENTS = table_of(Document)
# Locked in one order (as every writer of these rows does), then moved on in the same statement.
_GENERATED = (
    select(_DOCUMENTS.c.id)
    .where(
        _DOCUMENTS.c.message_id.in_(bindparam("message_ids", expanding=True)),
        _DOCUMENTS.c.status == DocumentStatus.GENERATED,
    )
    .order_by(_DOCUMENTS.c.created_at, _DOCUMENTS.c.id)
    .with_for_update()
)
_SETTLE = (
    update(_DOCUMENTS)
    .where(_DOCUMENTS.c.id.in_(_GENERATED.scalar_subquery()))
    .values(
        status=case(
            (
                _DOCUMENTS.c.message_id.in_(bindparam("sent_ids", expanding=True)),
                literal(DocumentStatus.SENT, _DOCUMENTS.c.status.type),
            ),
            else_=literal(DocumentStatus.FAILED, _DOCUMENTS.c.status.type),
        )
    )
    .returning(
        _DOCUMENTS.c.id,
        _DOCUMENTS.c.message_id,
        _DOCUMENTS.c.partner_id,
        _DOCUMENTS.c.document_type,
        _DOCUMENTS.c.business_reference,
        _DOCUMENTS.c.correlation_id,
        _DOCUMENTS.c.status,
        _DOCUMENTS.c.created_at,
    )
)

# PostgreSQL: the sent messages' ack clocks restart in a CTE of the same statement.
_SETTLE_AND_RESTART = _SETTLE.add_cte(RESTART_CLOCKS.cte("restarted"))


def settle_documents(
    session: Session,
    messages: Sequence[SettledMessage],
    now: datetime,
    *,
    box: SecretBox | None,
    policy: RetryPolicy,
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """In the transaction that recorded the sends: their documents sent or failed; deliveries per message."""
    done = [
        m for m in messages
        if m.partner_id is not None and m.direction is Direction.OUTBOUND
        and m.status in (MessageStatus.SENT, MessageStatus.FAILED)
    ]
    if not done:
        return {}
    sent = [m for m in done if m.status is MessageStatus.SENT]
    profiles = _profiles(session, {m.partner_id for m in done if m.partner_id is not None}, box)
    windows = {
        partner_id: timedelta(hours=profile.x12.acknowledgment.expect_within_hours)
        for partner_id, profile in profiles.items()
    }
    clocked = [m for m in sent if m.partner_id in windows]
    params = {"message_ids": [m.id for m in done], "sent_ids": [m.id for m in sent]}
    if session.get_bind().dialect.name == "postgresql":
        dues = due_times({m.id: now + windows[m.partner_id or ""] for m in clocked})
        settled = run(session, _SETTLE_AND_RESTART, params | {"dues": dues}).all()
    else:
        settled = run(session, _SETTLE, params).all()
        _restart_ack_clocks(session, clocked, now, windows)
    by_id = {m.id: m for m in done}
    listening: dict[tuple[str, str | None], list[EndpointRef]] = {}  # by event type and ERP webhook name
    news: list[NewDelivery] = []
    for document in sorted(settled, key=lambda row: (row.created_at, row.id)):
        message = by_id[document.message_id]
        event_type = DOCUMENT_SENT if document.status is DocumentStatus.SENT else DOCUMENT_FAILED
        profile = profiles.get(document.partner_id)
        key = (event_type, profile.erp.webhook if profile is not None else None)
        if key not in listening:
            listening[key] = subscribed_endpoints(session, event_type, name=key[1])
        endpoints = listening[key]
        if not endpoints:
            continue  # no ERP listens: no payload to build
        payload = {
            "document_type": document.document_type,
            "document_id": str(document.id),
            "business_reference": document.business_reference,
            "source": {"transport": message.transport.value, "filename": message.filename},
            "data": {"status": document.status.value, "error": message.error,
                     "receipt_sha256": message.receipt_sha256},
        }
        news += delivery_news(endpoints, event_type=event_type,
                              subject_id=subject_for(document.id, event_type),
                              partner_id=document.partner_id, payload=payload, message_id=message.id,
                              document_id=document.id, correlation_id=document.correlation_id,
                              policy=policy, now=now)
    deliveries: dict[uuid.UUID, list[uuid.UUID]] = {}
    for new, delivery_id in zip(news, create_deliveries(session, news), strict=True):
        assert new["message_id"] is not None
        deliveries.setdefault(new["message_id"], []).append(delivery_id)
    return deliveries


def _profiles(session: Session, partner_ids: set[str], box: SecretBox | None) -> dict[str, PartnerProfile]:
    """The partners' current profiles (one without a profile is left out)."""
    profiles = {}
    for partner_id in partner_ids:
        try:
            profiles[partner_id] = load_profile(session, partner_id, box).profile
        except ProfileMissing:
            continue
    return profiles


def _restart_ack_clocks(
    session: Session, sent: Sequence[SettledMessage], now: datetime, windows: dict[str, timedelta]
) -> None:
    """The partner's window starts when a message really left (per partner: its profile's hours)."""
    by_partner: dict[str, list[uuid.UUID]] = {}
    for message in sent:
        by_partner.setdefault(message.partner_id or "", []).append(message.id)
    for partner_id, ids in by_partner.items():
        restart_clock(session, message_ids=ids, sent_at=now, window=windows[partner_id])
