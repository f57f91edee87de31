"""Phases 1 and 2 of processing a received message: read it (no locks), then parse its archived blob.

Phase 1 reads the message, its partner's current profile and the subscribed endpoints into a
:class:`Snapshot` (one message, or a batch's in one query); phase 2 streams the blob through the
translators once, outside any transaction, into a :class:`Parsed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.deliveries.service import DOCUMENT_RECEIVED, EndpointRef, subscribed_endpoints
from gateway.processing.context import PipelineContext
from gateway.processing.outcome import FINISHED, MessageNotFound
from gateway.processing.payloads import PayloadError, PayloadKind, document_from_payload, payload_kind
from gateway.processing.profiles import CURRENT_VERSION, LoadedProfile, ProfileMissing, profile_version
from gateway.processing.x12_parse import ParsedX12, document_data, parse_x12
from gateway.store.core import run, table_of
from gateway.store.enums import MessageStatus, Transport
from gateway.store.models import Message, Partner, PartnerProfileVersion


@dataclass(frozen=True)
class Snapshot:
    """What phase 1 read of a message: its row, its partner's profile, the endpoints to deliver to."""

    id: uuid.UUID
    partner_id: str
    sha256: str
    content_type: str | None
    transport: Transport
    correlation_id: str
    status: MessageStatus
    profile: LoadedProfile | None
    profile_error: str | None
    endpoints: list[EndpointRef]
    received_at: datetime | None = None


@dataclass
class Parsed:
    """What phase 2 made of a message's blob: X12 interchanges, one document, or an error."""

    kind: PayloadKind | None
    x12: ParsedX12 | None = None
    document: dict[str, Any] | None = None
    error: str | None = None


_MESSAGES = table_of(Message)
_PARTNERS = table_of(Partner)
_VERSIONS = table_of(PartnerProfileVersion)
# The message and its partner's current profile version in one round trip.
_READ_MESSAGE_ROWS = (
    select(
        _MESSAGES.c.partner_id,
        _MESSAGES.c.content_sha256,
        _MESSAGES.c.content_type,
        _MESSAGES.c.transport,
        _MESSAGES.c.correlation_id,
        _MESSAGES.c.status,
        _MESSAGES.c.received_at,
        _PARTNERS.c.current_version,
        _VERSIONS.c.profile_sha256,
    )
    .select_from(_MESSAGES)
    .outerjoin(_PARTNERS, (_PARTNERS.c.id == _MESSAGES.c.partner_id) & _PARTNERS.c.deleted_at.is_(None))
    .outerjoin(_VERSIONS, CURRENT_VERSION)
)
_READ_MESSAGE = _READ_MESSAGE_ROWS.where(_MESSAGES.c.id == bindparam("message_id"))
_READ_MESSAGES = _READ_MESSAGE_ROWS.add_columns(_MESSAGES.c.id).where(
    _MESSAGES.c.id.in_(bindparam("message_ids", expanding=True))
)


# --- phase 1 -------------------------------------------------------------------------------


def read_message(ctx: PipelineContext, message_id: uuid.UUID) -> Snapshot:
    """Phase 1 for one message, in its own read-only transaction."""
    with ctx.db.unit_of_work(read_only=True) as session:
        row = run(session, _READ_MESSAGE, {"message_id": message_id}).first()
        return _snapshot(session, ctx, message_id, row, {})


def read_many(
    session: Session, ctx: PipelineContext, message_ids: Sequence[uuid.UUID]
) -> tuple[list[Snapshot], list[uuid.UUID]]:
    """Phase 1 for a batch: its messages in one query; returns the snapshots and the ids not found."""
    rows = {row.id: row for row in run(session, _READ_MESSAGES, {"message_ids": list(message_ids)})}
    endpoints: dict[str | None, list[EndpointRef]] = {}
    snaps, missing = [], []
    for message_id in message_ids:
        try:
            snaps.append(_snapshot(session, ctx, message_id, rows.get(message_id), endpoints))
        except MessageNotFound:
            missing.append(message_id)
    return snaps, missing


def _snapshot(
    session: Session,
    ctx: PipelineContext,
    message_id: uuid.UUID,
    message: Any,
    endpoints_by_name: dict[str | None, list[EndpointRef]],
) -> Snapshot:
    """A message's snapshot from its row of ``_READ_MESSAGE`` (None: not found)."""
    if message is None:
        raise MessageNotFound(f"message {message_id} not found")
    if message.partner_id is None:
        raise MessageNotFound(f"message {message_id} has no partner")
    profile: LoadedProfile | None = None
    profile_error: str | None = None
    endpoints: list[EndpointRef] = []
    if message.status not in FINISHED:
        try:
            profile = profile_version(
                session, message.partner_id, message.current_version, message.profile_sha256, ctx.box
            )
        except (ProfileMissing, ValueError) as exc:
            profile_error = f"cannot load the partner profile: {exc}"
        webhook_name = profile.profile.erp.webhook if profile else None
        if webhook_name not in endpoints_by_name:
            endpoints_by_name[webhook_name] = subscribed_endpoints(
                session, DOCUMENT_RECEIVED, name=webhook_name
            )
        endpoints = endpoints_by_name[webhook_name]
    return Snapshot(
        message_id,
        message.partner_id,
        message.content_sha256,
        message.content_type,
        message.transport,
        message.correlation_id,
        message.status,
        profile,
        profile_error,
        endpoints,
        message.received_at,
    )


# --- phase 2 -------------------------------------------------------------------------------


def parse_message(ctx: PipelineContext, snap: Snapshot) -> Parsed:
    """Phase 2: the message's archived blob parsed (X12) or read as a document, outside any transaction."""
    kind = payload_kind(snap.content_type)
    if snap.profile is None:
        return Parsed(kind, error=snap.profile_error or "no partner profile")
    if kind is None:
        return Parsed(kind, error=f"unsupported content type {snap.content_type!r}")
    if kind == "x12":
        return Parsed(kind, x12=parse_x12(ctx.blobs, snap.sha256, snap.profile.profile))
    with ctx.blobs.open(snap.sha256) as handle:
        payload = handle.read()
    try:
        document = document_from_payload(kind, payload, snap.profile.profile)
    except PayloadError as exc:
        return Parsed(kind, error=str(exc))
    return Parsed(kind, document=document_data(document))
