"""Bearer API keys and roles: every endpoint depends on :func:`require_roles`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from gateway.api.errors import ApiError
from gateway.store.api_keys import authenticate_api_key
from gateway.store.enums import ApiKeyRole


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, name, role and (for partner keys) its partner."""

    key_id: uuid.UUID
    name: str
    role: ApiKeyRole
    partner_id: str | None

    @property
    def actor(self) -> str:
        """How the caller appears in the event trail (never the key itself)."""
        return f"key:{self.name}"


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer API key")
    return token.strip()


def authenticate(request: Request) -> Principal:
    """The caller of this request, or 401."""
    token = _bearer(request)
    db = request.app.state.db
    with db.unit_of_work(read_only=True) as session:
        key = authenticate_api_key(session, token)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        principal = Principal(key.id, key.name, ApiKeyRole(key.role), key.partner_id)
    request.state.actor = principal.actor  # for the access log
    return principal


def require_roles(*roles: ApiKeyRole) -> Callable[..., Principal]:
    """A dependency admitting admins and the given roles; others get 403."""
    allowed = frozenset(roles) | {ApiKeyRole.ADMIN}

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:  # noqa: B008
        if principal.role not in allowed:
            raise ApiError(403, "forbidden", f"role {principal.role.value} may not do this")
        return principal

    return dependency


def require_partner_access(principal: Principal, partner_id: str) -> None:
    """A partner key may act only for its own partner (403 otherwise)."""
    if principal.role is ApiKeyRole.PARTNER and principal.partner_id != partner_id:
        raise ApiError(403, "forbidden", "this key belongs to another partner")
