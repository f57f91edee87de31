"""Webhook endpoints: registration, changes, soft deletion and the signing secret.

A secret is a Standard Webhooks ``whsec_`` + base64 key, generated when none is given and
shown once (in the answer that created or rotated it). It is stored encrypted with context
``webhook:<endpoint id>``; the delivery worker reads it with :func:`endpoint_secret`.
Deleting an endpoint keeps its row (deliveries point at it), disables it and frees its name.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.deliveries.service import DOCUMENT_RECEIVED
from gateway.deliveries.signing import SignatureError, generate_secret, secret_key
from gateway.secrets import SecretBox
from gateway.store.events import append_event
from gateway.store.models import WebhookEndpoint
from gateway.store.types import utcnow

WILDCARD = "*"
# The event types an endpoint may subscribe to ("*" = all of them).
WEBHOOK_EVENT_TYPES: frozenset[str] = frozenset({
    "document.received", "document.sent", "document.failed",
    "message.received", "message.rejected", "message.failed", "message.duplicate",
    "ack.accepted", "ack.rejected", "ack.overdue",
    "deadline.at_risk", "deadline.breached",
    "delivery.dead",
})
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
_NAME_MAX = 100


class EndpointNotFound(LookupError):
    """No live webhook endpoint has this id."""


class EndpointInvalid(ValueError):
    """A field of an endpoint is not acceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class EndpointConflict(Exception):
    """Another live endpoint already has this name."""


@dataclass(frozen=True)
class EndpointChanges:
    """What a PATCH changes (None: unchanged); ``rotate_secret`` generates a new secret."""

    name: str | None = None
    url: str | None = None
    events: Sequence[str] | None = None
    enabled: bool | None = None
    secret: str | None = None
    rotate_secret: bool = False


def secret_context(endpoint_id: uuid.UUID) -> str:
    """The encryption context of an endpoint's secret."""
    return f"webhook:{endpoint_id}"


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointInvalid("url", "must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise EndpointInvalid("url", "must not carry credentials; the signature authenticates us")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    """The event types, de-duplicated, if every one is known (or ``*``)."""
    if not events:
        raise EndpointInvalid("events", "subscribe to at least one event type (or '*')")
    unknown = sorted(set(events) - WEBHOOK_EVENT_TYPES - {WILDCARD})
    if unknown:
        raise EndpointInvalid("events", f"unknown event types {unknown}; known: "
                                        f"{sorted(WEBHOOK_EVENT_TYPES)} or '*'")
    return list(dict.fromkeys(events))


def check_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` + base64 of 24 to 64 bytes."""
    try:
        key = secret_key(secret) if secret.startswith("whsec_") else None
    except SignatureError:
        key = None
    if key is None or not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise EndpointInvalid("secret", f"must be whsec_ followed by base64 of {MIN_SECRET_BYTES} to "
                                        f"{MAX_SECRET_BYTES} bytes")
    return secret


def _check_name(session: Session, name: str, endpoint_id: uuid.UUID | None) -> str:
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise EndpointInvalid("name", f"must be 1 to {_NAME_MAX} characters")
    other = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.name == name)).first()
    if other is not None and other.id != endpoint_id:
        raise EndpointConflict(f"a webhook endpoint named {name!r} already exists")
    return name


def get_endpoint(session: Session, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    """A live endpoint by id."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    return None if endpoint is None or endpoint.deleted_at is not None else endpoint


def require_endpoint(session: Session, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """A live endpoint by id, or ``EndpointNotFound``."""
    endpoint = get_endpoint(session, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(str(endpoint_id))
    return endpoint


def find_endpoint_by_name(session: Session, name: str) -> WebhookEndpoint | None:
    """A live endpoint by name (a profile's ``erp.webhook``)."""
    return session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.name == name, WebhookEndpoint.deleted_at.is_(None))).first()


def list_endpoints(session: Session, *, after: uuid.UUID | None = None, limit: int = 50
                   ) -> tuple[list[WebhookEndpoint], uuid.UUID | None]:
    """Live endpoints ordered by id, one page after ``after``, and the next cursor."""
    query = (select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
             .order_by(WebhookEndpoint.id).limit(limit + 1))
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    rows = list(session.scalars(query))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def endpoints_for_event(session: Session, event_type: str) -> list[WebhookEndpoint]:
    """Enabled, live endpoints subscribed to ``event_type`` (directly or with ``*``)."""
    rows = session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.enabled.is_(True), WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id))
    return [row for row in rows if event_type in row.events or WILDCARD in row.events]


def erp_routing_warnings(session: Session, webhook: str | None) -> list[dict[str, str]]:
    """Why a partner's received documents would reach no ERP endpoint (empty when they would).

    A profile may name its endpoint before the endpoint exists, so this warns, it does not refuse.
    """
    problem = None
    if webhook is None:
        if not endpoints_for_event(session, DOCUMENT_RECEIVED):
            problem = "no enabled webhook endpoint is subscribed to document.received"
    elif (endpoint := find_endpoint_by_name(session, webhook)) is None:
        problem = f"no webhook endpoint is named {webhook!r}"
    elif not endpoint.enabled:
        problem = f"the webhook endpoint {webhook!r} is disabled"
    elif DOCUMENT_RECEIVED not in endpoint.events and WILDCARD not in endpoint.events:
        problem = f"the webhook endpoint {webhook!r} is not subscribed to document.received"
    if problem is None:
        return []
    return [{"field": "erp.webhook",
             "message": f"{problem}: this partner's documents are received and archived but reach no ERP"}]


def endpoint_secret(session: Session, endpoint: WebhookEndpoint, box: SecretBox) -> str:
    """The endpoint's ``whsec_`` signing secret, decrypted (for the delivery worker)."""
    del session  # the row holds the ciphertext; kept for a uniform service signature
    return box.decrypt_text(endpoint.secret_ciphertext, context=secret_context(endpoint.id))


def create_endpoint(
    session: Session,
    *,
    url: str,
    events: Sequence[str],
    box: SecretBox,
    actor: str,
    name: str | None = None,
    secret: str | None = None,
    enabled: bool = True,
    correlation_id: str | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (generated when not given; show it once)."""
    endpoint_id = uuid.uuid4()
    plain = check_secret(secret) if secret is not None else generate_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        name=_check_name(session, name or f"webhook-{endpoint_id.hex[:8]}", None),
        url=check_url(url),
        events=check_events(events),
        enabled=enabled,
        secret_ciphertext=box.encrypt(plain, context=secret_context(endpoint_id)),
    )
    session.add(endpoint)
    _flush(session, endpoint.name)
    append_event(session, event_type="webhook.created", actor=actor, subject_type="webhook",
                 subject_id=endpoint.id, correlation_id=correlation_id,
                 data={"name": endpoint.name, "url": endpoint.url, "events": endpoint.events,
                       "enabled": endpoint.enabled, "secret_generated": secret is None})
    return endpoint, plain


def update_endpoint(
    session: Session,
    endpoint_id: uuid.UUID,
    changes: EndpointChanges,
    *,
    box: SecretBox,
    actor: str,
    correlation_id: str | None = None,
    overlap: timedelta = timedelta(hours=24),
) -> tuple[WebhookEndpoint, str | None]:
    """Apply changes; returns the endpoint and the new secret when it was rotated (else None).

    A replaced secret keeps signing beside the new one for ``overlap``."""
    endpoint = require_endpoint(session, endpoint_id)
    changed: list[str] = []
    if changes.name is not None and changes.name != endpoint.name:
        endpoint.name = _check_name(session, changes.name, endpoint.id)
        changed.append("name")
    if changes.url is not None and changes.url != endpoint.url:
        endpoint.url = check_url(changes.url)
        changed.append("url")
    if changes.events is not None:
        events = check_events(changes.events)
        if events != endpoint.events:
            endpoint.events = events
            changed.append("events")
    if changes.enabled is not None and changes.enabled != endpoint.enabled:
        endpoint.enabled = changes.enabled
        changed.append("enabled")
    new_secret: str | None = None
    if changes.rotate_secret and changes.secret is not None:
        raise EndpointInvalid("secret", "give a secret or ask to rotate it, not both")
    if changes.secret is not None or changes.rotate_secret:
        plain = check_secret(changes.secret) if changes.secret is not None else generate_secret()
        if overlap > timedelta(0):  # the ERP switches when it is ready: both sign meanwhile
            endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
            endpoint.previous_secret_until = utcnow() + overlap
        endpoint.secret_ciphertext = box.encrypt(plain, context=secret_context(endpoint.id))
        new_secret = plain if changes.rotate_secret else None
        changed.append("secret")
    if changed:
        _flush(session, endpoint.name)
        append_event(session, event_type="webhook.updated", actor=actor, subject_type="webhook",
                     subject_id=endpoint.id, correlation_id=correlation_id,
                     data={"name": endpoint.name, "changed": changed, "url": endpoint.url,
                           "events": endpoint.events, "enabled": endpoint.enabled})
    return endpoint, new_secret


def delete_endpoint(session: Session, endpoint_id: uuid.UUID, *, actor: str,
                    correlation_id: str | None = None) -> None:
    """Soft-delete: disabled, hidden, its name freed; deliveries keep pointing at the row."""
    endpoint = require_endpoint(session, endpoint_id)
    name = endpoint.name
    endpoint.deleted_at = utcnow()
    endpoint.enabled = False
    endpoint.name = f"{name[:_NAME_MAX - 42]}~deleted~{endpoint.id}"
    session.flush()
    append_event(session, event_type="webhook.deleted", actor=actor, subject_type="webhook",
                 subject_id=endpoint.id, correlation_id=correlation_id, data={"name": name})


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create with the same name won
        raise EndpointConflict(f"a webhook endpoint named {name!r} already exists") from exc
