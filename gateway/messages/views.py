"""Archive routes for auditors (and the ERP, and partners for their own rows); replay for admins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from gateway.api.auth import Principal, require_partner_access, require_roles
from gateway.api.errors import ApiError
from gateway.messages import service
from gateway.messages.errors import (
    AccessDenied,
    ArchiveContentMissing,
    NotFound,
    ReplayNotAllowed,
)
from gateway.messages.schemas import (
    DEFAULT_TIMELINE_SIZE,
    MAX_TIMELINE_SIZE,
    DocumentDetail,
    MessageDetail,
    MessagePage,
    MessageQuery,
    ReplayRequest,
    ReplayResult,
    Timeline,
)
from gateway.store.db import Database
from gateway.store.enums import ApiKeyRole

router = APIRouter(tags=["archive"])

Reader = Annotated[Principal, Depends(require_roles(ApiKeyRole.AUDITOR, ApiKeyRole.ERP, ApiKeyRole.PARTNER))]
Admin = Annotated[Principal, Depends(require_roles())]


def _db(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def _scope(principal: Principal) -> str | None:
    """The partner a partner key is confined to ("" matches nothing if it has none)."""
    if principal.role is ApiKeyRole.PARTNER:
        return principal.partner_id or ""
    return None


@contextmanager
def _service_errors() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except AccessDenied:
        raise ApiError(403, "forbidden", "this key belongs to another partner") from None
    except ReplayNotAllowed as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    except ArchiveContentMissing as exc:
        raise ApiError(500, "archive_missing", str(exc)) from None


@router.get("/messages", response_model=MessagePage)
def list_messages(
    request: Request, query: Annotated[MessageQuery, Query()], principal: Reader
) -> MessagePage:
    """Search the archive; ``next`` is the cursor of the following page."""
    if query.partner:
        require_partner_access(principal, query.partner)
    with _service_errors(), _db(request).unit_of_work(read_only=True) as session:
        return service.search_messages(session, query, partner_scope=_scope(principal))


@router.get("/messages/{message_id}", response_model=MessageDetail)
def read_message(request: Request, message_id: uuid.UUID, principal: Reader) -> MessageDetail:
    """A message with its envelope tree, documents, acknowledgment status and errors."""
    with _service_errors(), _db(request).unit_of_work(read_only=True) as session:
        return service.get_message(session, message_id, partner_scope=_scope(principal))


@router.get(
    "/messages/{message_id}/raw",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 304: {"description": "unchanged"}},
)
def read_raw_message(
    request: Request,
    message_id: uuid.UUID,
    principal: Reader,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The archived bytes exactly as received or sent, streamed, with their SHA-256."""
    with _service_errors(), _db(request).unit_of_work(read_only=True) as session:
        content = service.open_raw_content(
            session, request.app.state.blobs, message_id, partner_scope=_scope(principal)
        )
    headers = content.headers()
    if if_none_match and content.etag() in {tag.strip() for tag in if_none_match.split(",")}:
        content.close()
        return Response(status_code=304, headers={"ETag": headers["ETag"]})
    return StreamingResponse(content.iter_chunks(), media_type=content.content_type, headers=headers)


@router.get("/messages/{message_id}/timeline", response_model=Timeline)
def read_timeline(
    request: Request,
    message_id: uuid.UUID,
    principal: Reader,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TIMELINE_SIZE)] = DEFAULT_TIMELINE_SIZE,
) -> Timeline:
    """The message's event trail (and its documents' and deliveries'), with a chain check."""
    with _service_errors(), _db(request).unit_of_work(read_only=True) as session:
        return service.message_timeline(
            session, message_id, partner_scope=_scope(principal), cursor=cursor, limit=limit
        )


@router.get("/documents/{document_id}", response_model=DocumentDetail)
def read_document(request: Request, document_id: uuid.UUID, principal: Reader) -> DocumentDetail:
    """A canonical document with its profile version, references and lineage."""
    with _service_errors(), _db(request).unit_of_work(read_only=True) as session:
        return service.get_document(session, document_id, partner_scope=_scope(principal))


@router.post("/messages/{message_id}/replay", status_code=202, response_model=ReplayResult)
def replay_message(
    request: Request, message_id: uuid.UUID, body: ReplayRequest, principal: Admin
) -> ReplayResult:
    """Queue the archived message again as a new message linked to the original (admin only)."""
    with _service_errors(), _db(request).unit_of_work() as session:
        new_id = service.replay_message(
            session,
            message_id,
            actor=principal.actor,
            duplicate_check=body.duplicate_check,
            send_acks=body.send_acks,
            control_numbers=body.control_numbers,
        )
    return ReplayResult(message_id=new_id, replay_of_id=message_id, **body.model_dump())
