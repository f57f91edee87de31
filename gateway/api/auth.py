"""Bearer API keys and roles: every endpoint depends on :func:`require_roles`."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from gateway.api.errors import ApiError
from gateway.api.rate_limits import ApiRateLimits
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


def _limits(request: Request) -> ApiRateLimits:
    """The app's rate limits (made on first use from its settings)."""
    limits: ApiRateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        settings = request.app.state.settings
        limits = request.app.state.rate_limits = ApiRateLimits.of(
            settings.api_rate_per_second, settings.api_rate_burst, settings.api_failed_logins_per_minute,
            settings.effective_rate_limit_url(),
        )
    return limits


def _too_many(wait: float, message: str) -> ApiError:
    return ApiError(429, "rate_limited", message, headers={"Retry-After": str(max(1, math.ceil(wait)))})


def authenticate(request: Request) -> Principal:
    """The caller of this request, or 401 (429 past the failed-login or the key's request rate)."""
    limits = _limits(request)
    address = request.client.host if request.client else None
    wait = limits.failed_logins.wait(address)
    if wait:
        raise _too_many(wait, "too many failed logins from this address; try again later")
    token = _bearer(request)
    db = request.app.state.db
    with db.unit_of_work(read_only=True) as session:
        key = authenticate_api_key(session, token)
        if key is None:
            limits.failed_logins.take(address)
            raise ApiError(401, "unauthorized", "unknown or revoked API key")
        principal = Principal(key.id, key.name, ApiKeyRole(key.role), key.partner_id)
    request.state.actor = principal.actor  # for the access log
    if limits.requests is not None and (wait := limits.requests.take(principal.key_id)):
        raise _too_many(wait, f"API key {principal.name} is over its request rate; slow down")
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
