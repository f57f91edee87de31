"""``POST /inbound/{partner_id}``: a partner (or a web shop on its behalf) posts one message.

Accepted bodies: raw X12 (``application/edi-x12``, ``text/plain``), canonical JSON or the
partner's own JSON (``application/json``, mapped by its profile's ``json_mapping``), and cXML
OrderRequest (``application/xml``, ``text/xml``). The body is streamed into the archive with
the size limit applied as it arrives (413, nothing stored); the answer is 202 with the
message id once bytes, message and outbox row are committed. Translation happens in the
workers; its outcome is read at ``GET /messages/{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.api.auth import Principal, require_partner_access, require_roles
from gateway.api.errors import ApiError
from gateway.archive.blob_store import BlobRef, BlobTooLarge
from gateway.intake import PartnerSuspended, UnknownPartner, receive_archived, require_partner
from gateway.logging import current_correlation_id
from gateway.processing.payloads import payload_kind
from gateway.processing.publisher import CeleryPublisher, Publisher
from gateway.store.db import Database
from gateway.store.enums import ApiKeyRole, Transport

router = APIRouter(prefix="/inbound", tags=["inbound"])
post_messages = require_roles(ApiKeyRole.PARTNER)
WRITE_BATCH_BYTES = 256 * 1024


def publisher_for(request: Request) -> Publisher:
    """The app's task publisher (``app.state.publisher``), made from the settings on first use."""
    publisher: Publisher | None = getattr(request.app.state, "publisher", None)
    if publisher is None:
        publisher = CeleryPublisher(request.app.state.settings)
        request.app.state.publisher = publisher
    return publisher


def _check_partner(db: Database, partner_id: str) -> None:
    with db.unit_of_work(read_only=True) as session:
        require_partner(session, partner_id)


@router.post("/{partner_id}", status_code=202)
async def post_inbound(
    partner_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(post_messages)],
) -> dict[str, Any]:
    """Archive the body as a message from ``partner_id`` and queue it for translation."""
    require_partner_access(principal, partner_id)
    settings = request.app.state.settings
    content_type = request.headers.get("content-type")
    if content_type is None or payload_kind(content_type) is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send application/edi-x12, text/plain, application/json, application/xml or text/xml",
            {"content_type": content_type},
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"the body exceeds {settings.max_body_bytes} bytes")
    try:
        await run_in_threadpool(_check_partner, request.app.state.db, partner_id)
    except UnknownPartner as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except PartnerSuspended as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    blob = await _archive_body(request, settings.max_body_bytes)
    received = await run_in_threadpool(
        receive_archived,
        request.app.state.db,
        blob,
        partner_id=partner_id,
        transport=Transport.HTTP,
        content_type=content_type,
        filename=request.headers.get("x-filename"),
        transport_message_id=request.headers.get("x-message-id"),
        correlation_id=current_correlation_id(),
        actor=principal.actor,
        publisher=publisher_for(request),
    )
    return {
        "message_id": str(received.message_id),
        "status": "received",
        "correlation_id": received.correlation_id,
        "sha256": blob.sha256,
        "size": blob.size,
    }


async def _archive_body(request: Request, max_bytes: int) -> BlobRef:
    """Stream the body into the archive; 413 past the limit and 400 when empty (nothing kept)."""
    writer = request.app.state.blobs.writer(max_bytes=max_bytes)
    pending: list[bytes] = []
    pending_size = total = 0
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            pending_size += len(chunk)
            total += len(chunk)
            if pending_size >= WRITE_BATCH_BYTES:
                writer.write(b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            writer.write(b"".join(pending))
    except BlobTooLarge as exc:
        raise ApiError(413, "payload_too_large", f"the body exceeds {max_bytes} bytes") from exc
    except BaseException:  # a client that went away (ClientDisconnect) included: nothing is kept
        writer.abort()
        raise
    if total == 0:
        writer.abort()
        raise ApiError(400, "bad_request", "the body is empty")
    ref: BlobRef = await run_in_threadpool(writer.commit)
    return ref
