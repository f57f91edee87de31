"""``/sftp/host-keys`` and ``/partners/{id}/sftp``: what partners pin, and each account's state.

Roles: host keys for every role but erp (partners need them to pin); account state for
onboarding, auditor and the partner's own key; unlocking for onboarding (and admin).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_partner_access, require_roles
from gateway.api.errors import ApiError, not_found
from gateway.secrets import SecretBox
from gateway.store.enums import ApiKeyRole
from gateway.transports.sftp import service
from gateway.transports.sftp.keys import ensure_host_keys
from gateway.transports.sftp.paths import MailboxLayout

router = APIRouter(tags=["sftp"])
read_host_keys = require_roles(ApiKeyRole.ONBOARDING, ApiKeyRole.AUDITOR, ApiKeyRole.PARTNER)
read_accounts = require_roles(ApiKeyRole.ONBOARDING, ApiKeyRole.AUDITOR, ApiKeyRole.PARTNER)
manage_accounts = require_roles(ApiKeyRole.ONBOARDING)


@router.get("/sftp/host-keys")
def get_host_keys(request: Request, _: Principal = Depends(read_host_keys),  # noqa: B008
                  box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """Our SFTP server's host keys and fingerprints (made on first use) and its port."""
    db = request.app.state.db
    ensure_host_keys(db, box)
    with db.unit_of_work(read_only=True) as session:
        return service.host_keys_body(session, request.app.state.settings.sftp_port)


@router.get("/partners/{partner_id}/sftp")
def get_partner_sftp(partner_id: str, request: Request,
                     principal: Principal = Depends(read_accounts),  # noqa: B008
                     box: SecretBox = Depends(secret_box)) -> dict[str, Any]:  # noqa: B008
    """The partner's hosted account (lockout, last login, files waiting) and poll state."""
    require_partner_access(principal, partner_id)
    layout = MailboxLayout.from_settings(request.app.state.settings)
    with request.app.state.db.unit_of_work() as session:
        body = service.partner_sftp_status(session, partner_id, box, layout)
    if body is None:
        raise not_found("partner", partner_id)
    return body


@router.post("/partners/{partner_id}/sftp/unlock")
def unlock_partner_sftp(partner_id: str, request: Request,
                        principal: Principal = Depends(manage_accounts)) -> dict[str, Any]:  # noqa: B008
    """Lift a failed-login lockout of the partner's hosted account."""
    try:
        with request.app.state.db.unit_of_work() as session:
            username = service.unlock_account(session, partner_id, actor=principal.actor)
    except service.NoSftpAccount:
        raise ApiError(404, "not_found", f"partner {partner_id} has no hosted SFTP account") from None
    return {"partner_id": partner_id, "username": username, "locked_until": None}
