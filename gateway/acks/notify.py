"""Webhook deliveries for acknowledgment and deadline events, through the delivery machinery.

Payloads follow DESIGN.md §5 (``id``, ``type``, ``partner_id``, ``document_type``,
``message_id``, ``source``, ``data``). Webhook ids are derived from the subject (an
expectation, an acknowledgment message, an alert), so a re-run never sends a second event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.deliveries.service import (
    EndpointRef,
    NewDelivery,
    RetryPolicy,
    create_deliveries,
    subscribed_endpoints,
)
from gateway.processing.references import primary_reference
from gateway.store.models import AckExpectation, Document, Message, Partner, PartnerProfileVersion

ACK_ACCEPTED = "ack.accepted"
ACK_REJECTED = "ack.rejected"
ACK_OVERDUE = "ack.overdue"
ACK_UNMATCHED = "ack.unmatched"
DEADLINE_AT_RISK = "deadline.at_risk"
DEADLINE_BREACHED = "deadline.breached"
DOCUMENT_SENT = "document.sent"
_NAMESPACE = uuid.UUID("0b0c1f83-4c1e-4d57-8f0e-0e6f5b0f7a11")
_ENDPOINTS = "edigate.endpoints"


def subject_for(*parts: object) -> uuid.UUID:
    """A stable subject id for an event (webhook ids derive from it)."""
    return uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts))


def erp_webhook_name(session: Session, partner_id: str) -> str | None:
    """The webhook endpoint name the partner's current profile sends its events to (None: all)."""
    profile = session.scalars(
        select(PartnerProfileVersion.profile)
        .join(
            Partner,
            (Partner.id == PartnerProfileVersion.partner_id)
            & (Partner.current_version == PartnerProfileVersion.version),
        )
        .where(Partner.id == partner_id)
    ).first()
    erp = (profile or {}).get("erp") or {}
    name = erp.get("webhook") if isinstance(erp, dict) else None
    return name if isinstance(name, str) else None


def subscribers(session: Session, event_type: str, partner_id: str) -> list[EndpointRef]:
    """The endpoints an event of the partner goes to (looked up once per unit of work)."""
    cache: dict[tuple[str, str], list[EndpointRef]] = session.info.setdefault(_ENDPOINTS, {})
    key = (event_type, partner_id)
    if key not in cache:
        cache[key] = subscribed_endpoints(session, event_type, name=erp_webhook_name(session, partner_id))
    return cache[key]


class Notice(TypedDict):
    """One event about a partner's message or document, before it is addressed to endpoints."""

    event_type: str
    subject_id: uuid.UUID
    partner_id: str
    payload: dict[str, Any]
    message_id: uuid.UUID | None
    document_id: uuid.UUID | None
    correlation_id: str
    policy: RetryPolicy
    now: datetime


def delivery_news(endpoints: Sequence[EndpointRef], **notice: Unpack[Notice]) -> list[NewDelivery]:
    """A new delivery of the notice per endpoint, its payload framed with partner and message."""
    message_id = notice["message_id"]
    body = {"partner_id": notice["partner_id"], "message_id": str(message_id) if message_id else None,
            **notice["payload"]}
    return [NewDelivery(endpoint_id=endpoint.id, event_type=notice["event_type"],
                        subject_id=notice["subject_id"], payload=body, partner_id=notice["partner_id"],
                        document_id=notice["document_id"], message_id=message_id,
                        correlation_id=notice["correlation_id"], policy=notice["policy"], now=notice["now"])
            for endpoint in endpoints]


def notify(session: Session, **notice: Unpack[Notice]) -> list[uuid.UUID]:
    """A delivery per subscribed endpoint of the partner's ERP webhook; their ids."""
    endpoints = subscribers(session, notice["event_type"], notice["partner_id"])
    return create_deliveries(session, delivery_news(endpoints, **notice))


def expectation_payload(
    session: Session, group: AckExpectation, sets: list[AckExpectation]
) -> dict[str, Any]:
    """The ``source`` and ``data`` of an ack event: the group, its sets and their documents."""
    message = session.get(Message, group.message_id)
    transaction_ids = [s.transaction_id for s in sets if s.transaction_id is not None]
    documents = (
        {
            d.transaction_id: d
            for d in session.scalars(select(Document).where(Document.transaction_id.in_(transaction_ids)))
        }
        if transaction_ids
        else {}
    )
    transactions = []
    document_types = set()
    for row in sets:
        document = documents.get(row.transaction_id)
        if document is not None:
            document_types.add(document.document_type)
        transactions.append(
            {
                "expectation_id": str(row.id),
                "set": row.set_id,
                "control_number": row.transaction_control_number,
                "status": row.status.value,
                "document_id": str(document.id) if document else None,
                "document_type": document.document_type if document else None,
                "business_reference": (
                    primary_reference(document.document_type, document.data) if document else None
                ),
                "errors": row.details.get("errors", []),
            }
        )
    return {
        "document_type": document_types.pop() if len(document_types) == 1 else None,
        "source": {
            "interchange_control_number": group.interchange_control_number,
            "group_control_number": group.group_control_number,
            "functional_id": group.functional_id,
            "transport": message.transport.value if message else None,
        },
        "data": {
            "expectation_id": str(group.id),
            "status": group.status.value,
            "ack_type": group.ack_type,
            "due_at": group.due_at.isoformat(),
            "acknowledged_at": group.acknowledged_at.isoformat() if group.acknowledged_at else None,
            "ack_message_id": str(group.ack_message_id) if group.ack_message_id else None,
            "errors": group.details.get("errors", []),
            "transactions": transactions,
        },
    }
