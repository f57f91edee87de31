"""``/webhooks``: the ERP registers, lists, changes and removes its webhook endpoints.

Roles: erp (and admin). The signing secret appears only in the answer that created it (or
rotated it with ``{"rotate_secret": true}``); it is never returned afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError, not_found
from gateway.deliveries.signing import previous_secret_signs
from gateway.logging import current_correlation_id
from gateway.secrets import SecretBox
from gateway.store.enums import ApiKeyRole
from gateway.store.models import WebhookEndpoint
from gateway.store.types import utcnow
from gateway.webhooks import endpoints

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
manage_webhooks = require_roles(ApiKeyRole.ERP)
T = TypeVar("T")


class EndpointCreate(BaseModel):
    """A new endpoint: its URL, the events it wants and optionally its secret and name."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1, max_length=50)
    secret: str | None = Field(None, description="whsec_…; generated and shown once when omitted")
    name: str | None = Field(None, max_length=100, description="referenced by profiles' erp.webhook")
    enabled: bool = True


class EndpointPatch(BaseModel):
    """Fields to change; ``rotate_secret`` answers with a freshly generated secret."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=50)
    secret: str | None = None
    name: str | None = Field(None, max_length=100)
    enabled: bool | None = None
    rotate_secret: bool = False


def _still_signing(endpoint: WebhookEndpoint) -> str | None:
    until = endpoint.previous_secret_until
    signs = previous_secret_signs(endpoint.previous_secret_ciphertext, until, utcnow())
    return until.isoformat() if signs and until is not None else None


def _body(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(endpoint.id), "name": endpoint.name, "url": endpoint.url, "events": endpoint.events,
        "enabled": endpoint.enabled, "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
        "previous_secret_until": _still_signing(endpoint),
    }
    if secret is not None:
        body["secret"] = secret
    return body


@contextmanager
def _service_errors() -> Iterator[None]:
    try:
        yield
    except endpoints.EndpointInvalid as exc:
        raise ApiError(422, "validation_error", str(exc),
                       [{"field": exc.field, "message": exc.message}]) from exc
    except endpoints.EndpointConflict as exc:
        raise ApiError(409, "conflict", str(exc), [{"field": "name", "message": str(exc)}]) from exc
    except endpoints.EndpointNotFound as exc:
        raise not_found("webhook endpoint", exc.args[0]) from exc


def _transaction(request: Request, work: Callable[[Session], T], *, read_only: bool = False) -> T:
    with _service_errors(), request.app.state.db.unit_of_work(read_only=read_only) as session:
        return work(session)


@router.post("", status_code=201)
def create_webhook(body: EndpointCreate, request: Request,
                   principal: Principal = Depends(manage_webhooks),  # noqa: B008
                   box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Register an endpoint; the answer holds its secret, shown this once."""
    def work(session: Session) -> dict[str, Any]:
        endpoint, secret = endpoints.create_endpoint(
            session, url=body.url, events=body.events, name=body.name, secret=body.secret,
            enabled=body.enabled, box=box, actor=principal.actor, correlation_id=current_correlation_id())
        return _body(endpoint, secret)

    return _transaction(request, work)


@router.get("")
def list_webhooks(request: Request, _: Principal = Depends(manage_webhooks),  # noqa: B008
                  limit: int = Query(50, ge=1, le=500), cursor: uuid.UUID | None = None) -> dict[str, Any]:
    """Live endpoints: ``{"items", "next"}``."""
    def work(session: Session) -> dict[str, Any]:
        rows, next_cursor = endpoints.list_endpoints(session, after=cursor, limit=limit)
        return {"items": [_body(r) for r in rows], "next": str(next_cursor) if next_cursor else None}

    return _transaction(request, work, read_only=True)


@router.get("/{endpoint_id}")
def get_webhook(endpoint_id: uuid.UUID, request: Request,
                _: Principal = Depends(manage_webhooks)) -> dict[str, Any]:  # noqa: B008
    """One endpoint (without its secret)."""
    return _transaction(request, lambda s: _body(endpoints.require_endpoint(s, endpoint_id)), read_only=True)


@router.patch("/{endpoint_id}")
def update_webhook(endpoint_id: uuid.UUID, body: EndpointPatch, request: Request,
                   principal: Principal = Depends(manage_webhooks),  # noqa: B008
                   box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Change an endpoint; with ``rotate_secret`` the answer holds the new secret, shown once."""
    changes = endpoints.EndpointChanges(name=body.name, url=body.url, events=body.events,
                                        enabled=body.enabled, secret=body.secret,
                                        rotate_secret=body.rotate_secret)

    def work(session: Session) -> dict[str, Any]:
        overlap = timedelta(hours=request.app.state.settings.webhook_secret_overlap_hours)
        endpoint, secret = endpoints.update_endpoint(session, endpoint_id, changes, box=box,
                                                     actor=principal.actor,
                                                     correlation_id=current_correlation_id(),
                                                     overlap=overlap)
        return _body(endpoint, secret)

    return _transaction(request, work)


@router.delete("/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: uuid.UUID, request: Request,
                   principal: Principal = Depends(manage_webhooks)) -> None:  # noqa: B008
    """Remove an endpoint (soft: deliveries keep their history)."""
    _transaction(request, lambda s: endpoints.delete_endpoint(
        s, endpoint_id, actor=principal.actor, correlation_id=current_correlation_id()))
