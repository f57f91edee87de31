"""``/deliveries``: ERP webhook deliveries — list (e.g. the dead ones), inspect, redeliver, accept/fail.

Roles: erp (and admin) for everything; auditor may read. Partner keys see nothing here.
A redelivery answers 202 with the new delivery; it carries the original ``webhook-id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError, not_found
from gateway.deliveries import service
from gateway.keyset import InvalidCursor, decode_position, encode_position
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import DELIVER
from gateway.processing.tuning import PipelineTuning
from gateway.store.enums import ApiKeyRole, DeliveryStatus
from gateway.store.models import Delivery, DeliveryAttempt, WebhookEndpoint

router = APIRouter(prefix="/deliveries", tags=["deliveries"])
read_deliveries = require_roles(ApiKeyRole.ERP, ApiKeyRole.AUDITOR)
manage_deliveries = require_roles(ApiKeyRole.ERP)
T = TypeVar("T")


class ErpOutcome(BaseModel):
    """The ERP's business answer to a delivered document."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)
    reference: str | None = Field(None, max_length=200, description="the ERP's own id, e.g. its order number")


def _after(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, ident = decode_position(cursor, "deliveries")
    try:
        return created_at, uuid.UUID(ident)
    except ValueError as exc:
        raise InvalidCursor("the cursor is not valid") from exc


def _body(
    row: Delivery,
    *,
    endpoint: str | None = None,
    attempts: list[DeliveryAttempt] | None = None,
    payload: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(row.id),
        "webhook_id": service.header_webhook_id(row),
        "event_type": row.event_type,
        "endpoint_id": str(row.endpoint_id),
        "endpoint_name": endpoint,
        "partner_id": row.partner_id,
        "document_id": str(row.document_id) if row.document_id else None,
        "message_id": str(row.message_id) if row.message_id else None,
        "status": row.status.value,
        "attempt_count": row.attempt_count,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "give_up_at": row.give_up_at.isoformat(),
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        "redelivery_of_id": str(row.redelivery_of_id) if row.redelivery_of_id else None,
        "correlation_id": row.correlation_id,
        "created_at": row.created_at.isoformat(),
    }
    if attempts is not None:
        body["attempts"] = [
            {
                "attempted_at": a.attempted_at.isoformat(),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "response_excerpt": a.response_excerpt,
            }
            for a in attempts
        ]
    if payload:
        body["payload"] = row.payload
    return body


def _endpoint_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.name).where(WebhookEndpoint.id.in_(ids))
    )
    return {ident: name for ident, name in rows}


def _transaction(request: Request, work: Callable[[Session], T], *, read_only: bool = False) -> T:
    try:
        with request.app.state.db.unit_of_work(read_only=read_only) as session:
            return work(session)
    except service.DeliveryNotFound as exc:
        raise not_found("delivery", str(exc).split()[1]) from exc
    except service.DeliveryError as exc:
        raise ApiError(409, "conflict", str(exc)) from exc


def _context(request: Request) -> PipelineContext:
    ctx: PipelineContext | None = getattr(request.app.state, "pipeline", None)
    if ctx is None:
        from gateway.inbound.views import publisher_for
        from gateway.secrets import SecretBox

        state = request.app.state
        ctx = PipelineContext(
            db=state.db,
            blobs=state.blobs,
            settings=state.settings,
            box=SecretBox.from_settings(state.settings),
            publisher=publisher_for(request),
            tuning=PipelineTuning(),
        )
        state.pipeline = ctx
    return ctx


@router.get("")
def list_deliveries(
    request: Request,
    _: Annotated[Principal, Depends(read_deliveries)],
    status: DeliveryStatus | None = None,
    partner_id: str | None = None,
    document_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Deliveries newest first: ``{"items", "next"}``; ``?status=dead`` is the dead-letter queue."""
    after = _after(cursor) if cursor else None

    def work(session: Session) -> dict[str, Any]:
        rows = service.list_deliveries(
            session,
            status=status,
            partner_id=partner_id,
            document_id=document_id,
            message_id=message_id,
            after=after,
            limit=limit + 1,
        )
        names = _endpoint_names(session, {r.endpoint_id for r in rows})
        page = rows[:limit]
        return {
            "items": [_body(r, endpoint=names.get(r.endpoint_id)) for r in page],
            "next": (encode_position("deliveries", page[-1].created_at, page[-1].id)
                     if len(rows) > limit else None),
        }

    return _transaction(request, work, read_only=True)


@router.get("/{delivery_id}")
def get_delivery(
    delivery_id: uuid.UUID, request: Request, _: Annotated[Principal, Depends(read_deliveries)]
) -> dict[str, Any]:
    """One delivery with its attempts and the exact payload sent."""

    def work(session: Session) -> dict[str, Any]:
        row = service.get_delivery(session, delivery_id)
        names = _endpoint_names(session, {row.endpoint_id})
        return _body(row, endpoint=names.get(row.endpoint_id), attempts=list(row.attempts), payload=True)

    return _transaction(request, work, read_only=True)


@router.post("/{delivery_id}/redeliver", status_code=202)
def redeliver(
    delivery_id: uuid.UUID, request: Request, principal: Annotated[Principal, Depends(manage_deliveries)]
) -> dict[str, Any]:
    """Send the event again as a new delivery (same webhook-id and body), due at once."""
    ctx = _context(request)
    row = _transaction(
        request, lambda s: service.redeliver(s, delivery_id, policy=ctx.retry_policy(), actor=principal.actor)
    )
    if ctx.publisher is not None:
        ctx.publisher.publish(DELIVER, {"delivery_ids": [str(row.id)]})
    return _body(row)


def _erp_outcome(request: Request, delivery_id: uuid.UUID, principal: Principal,
                 body: ErpOutcome | None, *, accepted: bool) -> dict[str, Any]:
    outcome = body or ErpOutcome()
    row = _transaction(
        request,
        lambda s: service.record_erp_outcome(
            s, delivery_id, accepted=accepted, actor=principal.actor,
            reason=outcome.reason, reference=outcome.reference,
        ),
    )
    return {**_body(row), "erp_outcome": "accepted" if accepted else "failed"}


@router.post("/{delivery_id}/accept")
def accept(
    delivery_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, Depends(manage_deliveries)],
    body: ErpOutcome | None = None,
) -> dict[str, Any]:
    """The ERP took the document into its books."""
    return _erp_outcome(request, delivery_id, principal, body, accepted=True)


@router.post("/{delivery_id}/fail")
def fail(
    delivery_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, Depends(manage_deliveries)],
    body: ErpOutcome | None = None,
) -> dict[str, Any]:
    """The ERP could not use the document (the reason lands on the timeline)."""
    return _erp_outcome(request, delivery_id, principal, body, accepted=False)
