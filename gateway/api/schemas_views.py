"""``/schemas``: the JSON Schemas of the canonical documents (DESIGN.md §6)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError
from gateway.store.enums import ApiKeyRole
from translators.canonical import DOCUMENT_TYPES, json_schema

router = APIRouter(prefix="/schemas", tags=["schemas"])
read_schemas = require_roles(ApiKeyRole.ONBOARDING, ApiKeyRole.ERP, ApiKeyRole.AUDITOR)


@router.get("")
def list_schemas(_: Principal = Depends(read_schemas)) -> dict[str, Any]:  # noqa: B008
    """The canonical document types and where their schemas are."""
    items = [{"document_type": name, "x12_set": set_id, "schema": f"/api/v1/schemas/{name}"}
             for name, set_id in DOCUMENT_TYPES.items()]
    return {"items": items, "next": None}


@router.get("/{document_type}")
def get_schema(document_type: str, _: Principal = Depends(read_schemas)) -> dict[str, Any]:  # noqa: B008
    """The JSON Schema of one canonical document type."""
    if document_type not in DOCUMENT_TYPES:
        raise ApiError(404, "not_found", f"no canonical document type {document_type!r}",
                       {"known": sorted(DOCUMENT_TYPES)})
    return json_schema(document_type)
