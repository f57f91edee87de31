"""The partner API: profiles (JSON or YAML), versions, the sample test and partner keys.

Roles: onboarding (and admin) change partners; auditors read them; partner keys are
created by admins only. Secrets are never returned: the profile shows them as ``"***"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError, not_found
from gateway.json_input import MAX_DOCUMENT_DEPTH, JsonInputError, check_depth, load_json
from gateway.logging import current_correlation_id
from gateway.secrets import SecretBox
from gateway.store.enums import ApiKeyRole
from gateway.store.models import ApiKey, Partner, PartnerProfileVersion
from gateway.webhooks.endpoints import erp_routing_warnings
from partner_profiles import service
from partner_profiles.schema import PartnerProfile

router = APIRouter(prefix="/partners", tags=["partners"])

MAX_PROFILE_BYTES = 1024 * 1024
MAX_SAMPLE_BYTES = 20 * 1024 * 1024
_JSON_TYPES = {"application/json"}
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
_PROFILE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object"}},
    "application/yaml": {"schema": {"type": "string"}},
}}}
_SAMPLE_BODY = {"requestBody": {"required": True, "content": {
    "application/edi-x12": {"schema": {"type": "string", "format": "binary"}},
}}}

read_partners = require_roles(ApiKeyRole.ONBOARDING, ApiKeyRole.AUDITOR)
write_partners = require_roles(ApiKeyRole.ONBOARDING)
admin_only = require_roles()

T = TypeVar("T")


# --- helpers: body, transaction, errors, answer shapes ---------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_yaml_aliases(text: bytes) -> None:
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ApiError(422, "validation_error", "YAML anchors and aliases are not accepted",
                               [{"field": "(body)", "message": "remove the *alias"}])
    except yaml.YAMLError as exc:
        raise ApiError(422, "validation_error", "the body is not valid YAML",
                       [{"field": "(body)", "message": str(exc)}]) from exc


async def _document_body(request: Request) -> Any:
    """The request body as data: JSON, or YAML for YAML media types (or none given)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _JSON_TYPES | _YAML_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the profile as application/json or application/yaml")
    raw = await _read_body(request, MAX_PROFILE_BYTES)
    if media_type in _JSON_TYPES:
        try:
            return load_json(raw, max_depth=MAX_DOCUMENT_DEPTH)
        except ValueError as exc:
            raise ApiError(422, "validation_error", "the body is not valid JSON",
                           [{"field": "(body)", "message": str(exc)}]) from exc
    _reject_yaml_aliases(raw)
    data = yaml.load(raw, Loader=yaml.CSafeLoader)
    try:
        check_depth(data, MAX_DOCUMENT_DEPTH)
    except JsonInputError as exc:
        raise ApiError(422, "validation_error", "the body is not an acceptable profile",
                       [{"field": "(body)", "message": str(exc)}]) from exc
    return data


def _transaction(request: Request, work: Callable[[Session], T], *, read_only: bool = False) -> T:
    with _service_errors(), request.app.state.db.unit_of_work(read_only=read_only) as session:
        return work(session)


@contextmanager
def _service_errors() -> Iterator[None]:
    try:
        yield
    except service.ProfileRejected as exc:
        raise ApiError(422, "validation_error", "the profile is not valid", exc.problems) from exc
    except service.PartnerConflict as exc:
        raise ApiError(409, "conflict", str(exc), [{"field": exc.field, "message": str(exc)}]) from exc
    except service.PartnerNotFound as exc:
        raise not_found("partner", exc.args[0] if exc.args else "") from exc


def _summary(partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id,
        "name": partner.name,
        "status": partner.status.value,
        "version": partner.current_version,
        "interchange_id": {"qualifier": partner.interchange_qualifier, "id": partner.interchange_id},
        "created_at": partner.created_at.isoformat(),
        "updated_at": partner.updated_at.isoformat(),
    }


def _version_summary(row: PartnerProfileVersion) -> dict[str, Any]:
    return {"version": row.version, "profile_sha256": row.profile_sha256,
            "created_at": row.created_at.isoformat(), "created_by": row.created_by}


def _detail(session: Session, partner: Partner) -> dict[str, Any]:
    row = service.current_version_row(session, partner)
    erp = row.profile.get("erp") or {}
    return {**_summary(partner), "profile_sha256": row.profile_sha256, "profile": service.masked_profile(row),
            "warnings": erp_routing_warnings(session, erp.get("webhook"))}


def _saved(session: Session, saved: service.SavedProfile) -> dict[str, Any]:
    return {**_detail(session, saved.partner), "changed": saved.changed}


def _key_body(row: ApiKey) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "role": row.role.value, "partner_id": row.partner_id,
            "prefix": row.prefix, "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None}


def _save(request: Request, profile: PartnerProfile, principal: Principal, box: SecretBox,
          **mode: bool) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        saved = service.save_profile(session, profile, box=box, actor=principal.actor,
                                     correlation_id=current_correlation_id(), **mode)
        return _saved(session, saved)

    return _transaction(request, work)


# --- profiles -----------------------------------------------------------------------------


@router.post("", status_code=201, openapi_extra=_PROFILE_BODY)
async def create_partner(request: Request, principal: Principal = Depends(write_partners),  # noqa: B008
                         box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Create a partner from a profile (JSON or YAML); 409 if the id exists."""
    with _service_errors():
        profile = service.validate_profile_data(await _document_body(request))
    return await run_in_threadpool(_save, request, profile, principal, box, create_only=True)


@router.get("")
def list_partners(request: Request, _: Principal = Depends(read_partners),  # noqa: B008
                  limit: int = Query(50, ge=1, le=500), cursor: str | None = None) -> dict[str, Any]:
    """Live partners, ordered by id: ``{"items", "next"}``."""
    def work(session: Session) -> dict[str, Any]:
        rows, next_cursor = service.list_partners(session, after=cursor, limit=limit)
        return {"items": [_summary(p) for p in rows], "next": next_cursor}

    return _transaction(request, work, read_only=True)


@router.get("/{partner_id}")
def get_partner(partner_id: str, request: Request,
                _: Principal = Depends(read_partners)) -> dict[str, Any]:  # noqa: B008
    """One partner with its current profile (secrets masked)."""
    return _transaction(request, lambda s: _detail(s, service.require_partner(s, partner_id)),
                        read_only=True)


@router.put("/{partner_id}", openapi_extra=_PROFILE_BODY)
async def replace_partner(partner_id: str, request: Request,
                          principal: Principal = Depends(write_partners),  # noqa: B008
                          box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Replace the whole profile: a new version (``"***"`` keeps a stored secret)."""
    data = await _document_body(request)
    with _service_errors():
        profile = service.replacement_profile(partner_id, data)
    return await run_in_threadpool(_save, request, profile, principal, box, update_only=True)


@router.patch("/{partner_id}", openapi_extra={"requestBody": {"required": True, "content": {
    "application/merge-patch+json": {"schema": {"type": "object"}},
    "application/json": {"schema": {"type": "object"}}}}})
async def patch_partner(partner_id: str, request: Request,
                        principal: Principal = Depends(write_partners),  # noqa: B008
                        box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Apply a JSON merge patch (RFC 7386) to the profile: a new version."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("", "application/merge-patch+json", "application/json"):
        raise ApiError(415, "unsupported_media_type", "send a JSON merge patch")
    try:
        patch = load_json(await _read_body(request, MAX_PROFILE_BYTES), max_depth=MAX_DOCUMENT_DEPTH)
    except ValueError as exc:
        raise ApiError(422, "validation_error", "the body is not valid JSON",
                       [{"field": "(body)", "message": str(exc)}]) from exc
    if not isinstance(patch, dict):
        raise ApiError(422, "validation_error", "a merge patch must be a JSON object",
                       [{"field": "(body)", "message": "expected an object"}])

    def work(session: Session) -> dict[str, Any]:
        saved = service.patch_profile(session, partner_id, patch, box=box, actor=principal.actor,
                                      correlation_id=current_correlation_id())
        return _saved(session, saved)

    return await run_in_threadpool(_transaction, request, work)


@router.delete("/{partner_id}", status_code=204)
def delete_partner(partner_id: str, request: Request,
                   principal: Principal = Depends(write_partners)) -> None:  # noqa: B008
    """Soft-delete a partner: versions are kept, its partner keys revoked."""
    _transaction(request, lambda s: service.delete_partner(
        s, partner_id, actor=principal.actor, correlation_id=current_correlation_id()))


# --- versions -----------------------------------------------------------------------------


@router.get("/{partner_id}/versions")
def list_versions(partner_id: str, request: Request, _: Principal = Depends(read_partners),  # noqa: B008
                  limit: int = Query(50, ge=1, le=500), cursor: int | None = None) -> dict[str, Any]:
    """Every version of the profile, oldest first (also for deleted partners)."""
    def work(session: Session) -> dict[str, Any]:
        service.require_partner(session, partner_id, include_deleted=True)
        rows, next_cursor = service.list_versions(session, partner_id, after=cursor, limit=limit)
        return {"items": [_version_summary(r) for r in rows], "next": next_cursor}

    return _transaction(request, work, read_only=True)


@router.get("/{partner_id}/versions/{version}")
def get_version(partner_id: str, version: int, request: Request,
                _: Principal = Depends(read_partners)) -> dict[str, Any]:  # noqa: B008
    """One version of the profile (secrets masked)."""
    def work(session: Session) -> dict[str, Any]:
        service.require_partner(session, partner_id, include_deleted=True)
        row = service.get_version(session, partner_id, version)
        if row is None:
            raise not_found("profile version", f"{partner_id}/{version}")
        return {**_version_summary(row), "partner_id": partner_id, "profile": service.masked_profile(row)}

    return _transaction(request, work, read_only=True)


# --- the sample test ----------------------------------------------------------------------


@router.post("/{partner_id}/test", openapi_extra=_SAMPLE_BODY)
async def test_partner(partner_id: str, request: Request,
                       _: Principal = Depends(write_partners),  # noqa: B008
                       box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Translate a sample X12 file with the partner's profile; nothing is stored or sent."""
    limit = min(MAX_SAMPLE_BYTES, request.app.state.settings.max_body_bytes)
    sample = await _read_body(request, limit)
    if not sample.strip():
        raise ApiError(422, "validation_error", "send an X12 sample as the body",
                       [{"field": "(body)", "message": "empty"}])

    def load(session: Session) -> tuple[PartnerProfile, int, list[dict[str, str]]]:
        found = service.current_profile(session, partner_id, box)
        if found is None:
            raise service.PartnerNotFound(partner_id)
        profile, version = found
        return profile, version, erp_routing_warnings(session, profile.erp.webhook)

    profile, version, warnings = await run_in_threadpool(_transaction, request, load, read_only=True)
    result = await run_in_threadpool(service.preview_sample, profile, sample)
    result["notes"] += [warning["message"] for warning in warnings]
    return {"partner_id": partner_id, "profile_version": version, **result}


# --- partner keys -------------------------------------------------------------------------


class PartnerKeyRequest(BaseModel):
    """What to call a new partner key."""

    name: str = Field(min_length=1, max_length=200)


@router.post("/{partner_id}/keys", status_code=201)
def create_partner_key(partner_id: str, body: PartnerKeyRequest, request: Request,
                       principal: Principal = Depends(admin_only)) -> dict[str, Any]:  # noqa: B008
    """Create an inbound API key scoped to this partner; the key is in this answer only."""
    def work(session: Session) -> dict[str, Any]:
        row, key = service.create_partner_key(session, partner_id, name=body.name, actor=principal.actor)
        return {**_key_body(row), "key": key}

    return _transaction(request, work)


@router.get("/{partner_id}/keys")
def list_partner_keys(partner_id: str, request: Request,
                      _: Principal = Depends(admin_only)) -> dict[str, Any]:  # noqa: B008
    """The partner's keys (never the keys themselves)."""
    def work(session: Session) -> dict[str, Any]:
        return {"items": [_key_body(r) for r in service.list_partner_keys(session, partner_id)], "next": None}

    return _transaction(request, work, read_only=True)


@router.delete("/{partner_id}/keys/{key_id}", status_code=204)
def revoke_partner_key(partner_id: str, key_id: uuid.UUID, request: Request,
                       principal: Principal = Depends(admin_only)) -> None:  # noqa: B008
    """Revoke one of the partner's keys."""
    _transaction(request, lambda s: service.revoke_partner_key(s, partner_id, key_id, actor=principal.actor))
