"""AS2 management under /api/v1: our key pairs (admin only), partner certificates and options.

``/as2/keys``: generate, import (PKCS#12), list, activate, deactivate, retire. Private keys
are never returned. ``/partners/{id}/as2/certificates``: upload (PEM, DER or PKCS#12, raw or
base64 in JSON), list, retire: onboarding (and admin) write, auditors read.
``/partners/{id}/as2/options``: the partner's interop switches.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway.api.app import secret_box
from gateway.api.auth import Principal, require_roles
from gateway.api.errors import ApiError
from gateway.secrets import SecretBox
from gateway.store.enums import ApiKeyRole
from gateway.store.models import Partner
from gateway.transports.as2 import certificates as certs
from gateway.transports.as2.models import As2KeyPair, As2PartnerCertificate
from gateway.transports.as2.partners import As2Options, load_options, save_options

router = APIRouter(tags=["as2"])
admin_only = require_roles()
read_partner_certs = require_roles(ApiKeyRole.ONBOARDING, ApiKeyRole.AUDITOR)
write_partner_certs = require_roles(ApiKeyRole.ONBOARDING)


class KeyPairOut(BaseModel):
    """One of our key pairs (never the private key)."""

    id: uuid.UUID
    name: str
    as2_id: str
    status: str
    certificate_pem: str
    fingerprint_sha256: str
    subject: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class GenerateKey(BaseModel):
    """Generate a key pair, or import one from base64 PKCS#12."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    as2_id: str = Field(min_length=1, max_length=128)
    days: int = Field(730, ge=1, le=3650)
    key_size: Literal[2048, 3072, 4096] = 2048
    activate: bool = True
    pkcs12: str | None = Field(None, description="base64 PKCS#12 to import instead of generating")
    password: str | None = None


class KeyStatus(BaseModel):
    """A new status for a key pair."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "inactive", "retired"]


class CertificateOut(BaseModel):
    """One partner certificate."""

    id: uuid.UUID
    partner_id: str
    usage: str
    status: str
    certificate_pem: str
    fingerprint_sha256: str
    subject: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    retired_at: datetime | None


class CertificateUpload(BaseModel):
    """A certificate as PEM text, or base64 DER/PKCS#12."""

    model_config = ConfigDict(extra="forbid")

    certificate: str = Field(min_length=1)
    usage: Literal["verify", "encrypt", "both"] = "both"
    password: str | None = None


def _key_out(row: As2KeyPair) -> dict[str, Any]:
    return KeyPairOut.model_validate(row, from_attributes=True).model_dump(mode="json")


def _cert_out(row: As2PartnerCertificate) -> dict[str, Any]:
    return CertificateOut.model_validate(row, from_attributes=True).model_dump(mode="json")


def _forget_keys(request: Request) -> None:
    ctx = getattr(request.app.state, "as2_context", None)
    if ctx is not None:
        ctx.forget_keys()


def _cert_bytes(text: str) -> bytes:
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ApiError(422, "invalid_certificate", "send PEM text or base64 DER/PKCS#12") from exc


# --- our key pairs ------------------------------------------------------------------------------


@router.get("/as2/keys")
def list_keys(request: Request, _: Annotated[Principal, Depends(admin_only)]) -> dict[str, Any]:
    """Our key pairs, newest first."""
    with request.app.state.db.unit_of_work(read_only=True) as session:
        return {"items": [_key_out(row) for row in certs.list_key_pairs(session)], "next": None}


@router.post("/as2/keys", status_code=201)
def create_key(
    body: GenerateKey,
    request: Request,
    principal: Annotated[Principal, Depends(admin_only)],
    box: Annotated[SecretBox, Depends(secret_box)],
) -> dict[str, Any]:
    """Generate (or import from PKCS#12) a key pair; active at once unless ``activate`` is false."""
    with request.app.state.db.unit_of_work() as session:
        if body.pkcs12:
            try:
                key, cert, _ = pkcs12.load_key_and_certificates(
                    _cert_bytes(body.pkcs12), body.password.encode() if body.password else None
                )
            except ValueError as exc:
                raise ApiError(422, "invalid_certificate", f"unreadable PKCS#12: {exc}") from exc
            if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
                raise ApiError(
                    422, "invalid_certificate", "the PKCS#12 must hold an RSA key and its certificate"
                )
            try:
                row = certs.add_key_pair(
                    session,
                    name=body.name,
                    as2_id=body.as2_id,
                    key=key,
                    cert=cert,
                    box=box,
                    actor=principal.actor,
                    activate=body.activate,
                )
            except certs.CertificateError as exc:
                raise ApiError(422, "invalid_certificate", str(exc)) from exc
        else:
            row = certs.generate_key_pair(
                session,
                name=body.name,
                as2_id=body.as2_id,
                box=box,
                actor=principal.actor,
                days=body.days,
                key_size=body.key_size,
                activate=body.activate,
            )
        out = _key_out(row)
    _forget_keys(request)
    return out


@router.get("/as2/keys/{key_id}")
def get_key(
    key_id: uuid.UUID, request: Request, _: Annotated[Principal, Depends(admin_only)]
) -> dict[str, Any]:
    """One key pair."""
    with request.app.state.db.unit_of_work(read_only=True) as session:
        try:
            return _key_out(certs.get_key_pair(session, key_id))
        except certs.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from exc


@router.post("/as2/keys/{key_id}/status")
def set_key_status(
    key_id: uuid.UUID, body: KeyStatus, request: Request, principal: Annotated[Principal, Depends(admin_only)]
) -> dict[str, Any]:
    """Activate, deactivate or retire a key pair (retired is final)."""
    with request.app.state.db.unit_of_work() as session:
        try:
            out = _key_out(certs.set_key_status(session, key_id, body.status, actor=principal.actor))
        except certs.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from exc
        except certs.CertificateError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
    _forget_keys(request)
    return out


# --- partner certificates and options -------------------------------------------------------------


def _require_partner(session: Any, partner_id: str) -> None:
    partner = session.get(Partner, partner_id)
    if partner is None or partner.deleted_at is not None:
        raise ApiError(404, "not_found", f"no partner {partner_id!r}")


@router.get("/partners/{partner_id}/as2/certificates")
def list_certificates(
    partner_id: str, request: Request, _: Annotated[Principal, Depends(read_partner_certs)]
) -> dict[str, Any]:
    """The partner's AS2 certificates, newest first."""
    with request.app.state.db.unit_of_work(read_only=True) as session:
        _require_partner(session, partner_id)
        return {
            "items": [_cert_out(r) for r in certs.list_partner_certificates(session, partner_id)],
            "next": None,
        }


@router.post("/partners/{partner_id}/as2/certificates", status_code=201)
async def upload_certificate(
    partner_id: str, request: Request, principal: Annotated[Principal, Depends(write_partner_certs)]
) -> dict[str, Any]:
    """Upload a certificate: JSON ``{certificate, usage, password}`` or a raw PEM/DER/PKCS#12 body."""
    raw = await request.body()
    usage, password = request.query_params.get("usage", "both"), request.headers.get("x-pkcs12-password")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            upload = CertificateUpload.model_validate_json(raw)
        except ValueError as exc:
            raise ApiError(422, "validation_error", "invalid certificate upload", str(exc)) from exc
        data, usage, password = _cert_bytes(upload.certificate), upload.usage, upload.password
    else:
        data = raw
    if usage not in certs.CERT_USAGES:
        raise ApiError(422, "validation_error", f"usage must be one of {', '.join(certs.CERT_USAGES)}")
    try:
        cert = certs.load_certificate(data, password=password.encode() if password else None)
    except certs.CertificateError as exc:
        raise ApiError(422, "invalid_certificate", str(exc)) from exc

    def store() -> dict[str, Any]:
        with request.app.state.db.unit_of_work() as session:
            _require_partner(session, partner_id)
            return _cert_out(
                certs.add_partner_certificate(session, partner_id, cert, usage=usage, actor=principal.actor)
            )

    return await run_in_threadpool(store)


@router.delete("/partners/{partner_id}/as2/certificates/{cert_id}")
def retire_certificate(
    partner_id: str,
    cert_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, Depends(write_partner_certs)],
) -> dict[str, Any]:
    """Retire a partner certificate (kept for the record, no longer used)."""
    with request.app.state.db.unit_of_work() as session:
        _require_partner(session, partner_id)
        try:
            return _cert_out(
                certs.retire_partner_certificate(session, partner_id, cert_id, actor=principal.actor)
            )
        except certs.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from exc


@router.get("/partners/{partner_id}/as2/options")
def get_options(
    partner_id: str, request: Request, _: Annotated[Principal, Depends(read_partner_certs)]
) -> dict[str, Any]:
    """The partner's AS2 interop options."""
    with request.app.state.db.unit_of_work(read_only=True) as session:
        _require_partner(session, partner_id)
        return load_options(session, partner_id).model_dump(mode="json")


@router.put("/partners/{partner_id}/as2/options")
def put_options(
    partner_id: str, body: As2Options, request: Request, _: Annotated[Principal, Depends(write_partner_certs)]
) -> dict[str, Any]:
    """Replace the partner's AS2 interop options."""
    with request.app.state.db.unit_of_work() as session:
        _require_partner(session, partner_id)
        save_options(session, partner_id, body)
    return body.model_dump(mode="json")
