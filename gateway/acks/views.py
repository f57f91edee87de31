"""``/acks`` (the review queue), ``/acks/unmatched`` and ``/reports/at-risk``: thin routes.

Roles: erp and auditor read, erp reviews (admin always). Nothing here is partner-keyed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.acks import deadlines, review
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError
from gateway.store.db import Database
from gateway.store.enums import AckStatus, ApiKeyRole
from gateway.store.types import utcnow

router = APIRouter(tags=["acknowledgments"])
Reader = Annotated[Principal, Depends(require_roles(ApiKeyRole.ERP, ApiKeyRole.AUDITOR))]
Reviewer = Annotated[Principal, Depends(require_roles(ApiKeyRole.ERP))]


class ReviewRequest(BaseModel):
    """``POST /acks/{id}/review``: a note on what was done (who and when are recorded)."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=4000)


def _db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except review.AckNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc


@router.get("/acks")
def list_acks(
    request: Request,
    principal: Reader,
    status: Annotated[list[AckStatus] | None, Query(description="repeat or comma-separate")] = None,
    partner: str | None = None,
    level: Literal["group", "transaction", "all"] = "group",
    reviewed: bool | None = None,
    due_before: datetime | None = None,
    message_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=review.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Expected acknowledgments by state (``?status=overdue&status=rejected``), newest first."""
    query = review.AckQuery(
        statuses=tuple(status or ()),
        partner_id=partner,
        level=level,
        reviewed=reviewed,
        due_before=due_before,
        message_id=message_id,
    )
    with _errors(), _db(request).unit_of_work(read_only=True) as session:
        items, following = review.list_expectations(session, query, cursor=cursor, limit=limit)
    return {"items": items, "next": following}


@router.get("/acks/unmatched")
def list_unmatched(
    request: Request,
    principal: Reader,
    partner: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=review.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Acknowledgments from partners that matched nothing we sent (never acknowledged themselves)."""
    with _errors(), _db(request).unit_of_work(read_only=True) as session:
        items, following = review.list_unmatched(session, partner_id=partner, cursor=cursor, limit=limit)
    return {"items": items, "next": following}


@router.get("/acks/{expectation_id}")
def get_ack(request: Request, expectation_id: uuid.UUID, principal: Reader) -> dict[str, Any]:
    """One expectation with its transaction sets, their documents and the error detail."""
    with _errors(), _db(request).unit_of_work(read_only=True) as session:
        return review.get_expectation(session, expectation_id)


@router.post("/acks/{expectation_id}/review")
def review_ack(
    request: Request, expectation_id: uuid.UUID, body: ReviewRequest, principal: Reviewer
) -> dict[str, Any]:
    """Record that someone looked at an overdue or rejected acknowledgment (who, when, note)."""
    with _errors(), _db(request).unit_of_work() as session:
        return review.review_expectation(
            session, expectation_id, actor=principal.actor, note=body.note, now=utcnow()
        )


@router.get("/reports/at-risk")
def at_risk_report(
    request: Request,
    principal: Reader,
    partner: str | None = None,
    level: Literal["at_risk", "breached"] | None = None,
) -> dict[str, Any]:
    """Orders at risk of missing (or past) a business deadline from the partners' profiles."""
    now = utcnow()
    with _db(request).unit_of_work(read_only=True) as session:
        items = deadlines.at_risk(session, now=now, partner_id=partner)
    return {
        "items": [i.to_dict(now) for i in items if level is None or i.level == level],
        "next": None,
        "generated_at": now.isoformat(),
    }
