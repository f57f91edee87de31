"""Open an inbound AS2 body: decrypt, verify, decompress (in either order), find the payload, MIC.

Pure: no database, no I/O. The MIC follows RFC 4130 §7.3.1 and RFC 5402 §4: over the signed
entity (headers included) when signed; over the decrypted entity when encrypted but unsigned;
over the content alone otherwise. Signatures are checked over the bytes exactly as received,
falling back to CRLF canonicalisation only for text parts or parts without a transfer encoding.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import UnsupportedAlgorithm, digest_bytes, micalg_name
from gateway.transports.as2.mdn import (
    AUTHENTICATION_FAILED,
    DECRYPTION_FAILED,
    INTEGRITY_CHECK_FAILED,
    UNEXPECTED_ERROR,
)
from gateway.transports.as2.mime import (
    Entity,
    MimeError,
    decode_transfer_encoding,
    parse_entity,
    render_headers,
    split_multipart,
)

MAX_LAYERS = 6


class UnwrapError(Exception):
    """The body could not be opened; ``modifier`` is the MDN disposition modifier to answer with."""

    def __init__(self, modifier: str, message: str) -> None:
        super().__init__(message)
        self.modifier = modifier


@dataclass
class Unwrapped:
    """The payload entity and what was done to reach it."""

    payload: Entity
    encrypted: bool = False
    signed: bool = False
    compressed: bool = False
    signature_digest: str | None = None
    mic_source: bytes | None = None
    layers: list[str] = field(default_factory=list)

    def mic(self, digest: str, *, legacy: bool = False) -> str:
        """``base64(digest), alg`` over the right bytes for this message."""
        source = self.mic_source if self.mic_source is not None else self.payload.decoded_body()
        value = base64.b64encode(digest_bytes(digest, source)).decode("ascii")
        return f"{value}, {micalg_name(digest, legacy=legacy)}"


def top_entity(
    content_type: str,
    body: bytes,
    content_transfer_encoding: str | None = None,
    content_disposition: str | None = None,
) -> Entity:
    """The outer entity from HTTP headers (base64 on the HTTP level undone)."""
    headers = [("Content-Type", content_type or "application/octet-stream")]
    if content_disposition:
        headers.append(("Content-Disposition", content_disposition))
    entity = parse_entity(render_headers(headers) + body)
    if content_transfer_encoding:
        entity = Entity(
            entity.raw, entity.headers, decode_transfer_encoding(entity.body, content_transfer_encoding)
        )
    return entity


def _smime_type(entity: Entity) -> str:
    return (entity.param("smime-type") or "").lower()


def _verify(
    entity: Entity, certs: Sequence[x509.Certificate], allow_expired: bool
) -> tuple[bytes, cms.Verified]:
    boundary = entity.param("boundary")
    if not boundary:
        raise UnwrapError(AUTHENTICATION_FAILED, "multipart/signed without a boundary")
    parts = split_multipart(entity.body, boundary)
    if len(parts) < 2:
        raise UnwrapError(AUTHENTICATION_FAILED, "multipart/signed without a signature part")
    signed_part = parts[0]
    signature_entity = parse_entity(parts[1])
    signature = signature_entity.decoded_body()
    try:
        return signed_part, cms.verify_detached(signature, signed_part, certs, allow_expired=allow_expired)
    except cms.SignatureInvalid as first:
        inner = parse_entity(signed_part)
        textual = inner.content_type.startswith("text/") or "content-transfer-encoding" not in inner.headers
        canonical = signed_part.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if textual and canonical != signed_part:
            try:
                return canonical, cms.verify_detached(
                    signature, canonical, certs, allow_expired=allow_expired
                )
            except cms.CmsError:
                pass
        modifier = INTEGRITY_CHECK_FAILED if "digest does not match" in str(first) else AUTHENTICATION_FAILED
        raise UnwrapError(modifier, str(first)) from first
    except (cms.CmsError, UnsupportedAlgorithm) as exc:
        raise UnwrapError(AUTHENTICATION_FAILED, f"unusable signature: {exc}") from exc


def unwrap(
    entity: Entity,
    *,
    keys: Sequence[cms.KeyPair],
    verify_certs: Sequence[x509.Certificate],
    allow_expired: bool = False,
    max_bytes: int | None = None,
) -> Unwrapped:
    """Peel encryption, signature and compression layers until the payload is reached."""
    result = Unwrapped(entity)
    current = entity
    try:
        for _ in range(MAX_LAYERS):
            kind = current.content_type
            smime = _smime_type(current)
            if (
                kind in ("application/pkcs7-mime", "application/x-pkcs7-mime")
                and smime in ("enveloped-data", "authenveloped-data", "")
                and not (smime == "" and _is_compressed(current))
            ):
                if result.encrypted:
                    raise UnwrapError(UNEXPECTED_ERROR, "encrypted twice")
                try:
                    opened = cms.decrypt(current.decoded_body(), keys)
                except (cms.CmsError, UnsupportedAlgorithm, MimeError):
                    raise UnwrapError(DECRYPTION_FAILED, "decryption failed") from None
                result.encrypted = True
                result.layers.append("decrypted")
                current = parse_entity(opened)
                if not result.signed:
                    result.mic_source = opened
                continue
            if kind == "multipart/signed":
                if result.signed:
                    raise UnwrapError(UNEXPECTED_ERROR, "signed twice")
                signed_part, verified = _verify(current, verify_certs, allow_expired)
                result.signed = True
                result.signature_digest = verified.digest
                result.mic_source = signed_part
                result.layers.append("verified")
                current = parse_entity(signed_part)
                continue
            if kind in ("application/pkcs7-mime", "application/x-pkcs7-mime") and smime in (
                "compressed-data",
                "",
            ):
                if result.compressed:
                    raise UnwrapError(UNEXPECTED_ERROR, "compressed twice")
                try:
                    inflated = cms.decompress(current.decoded_body(), max_bytes=max_bytes)
                except cms.CmsError as exc:
                    raise UnwrapError(UNEXPECTED_ERROR, f"decompression failed: {exc}") from exc
                result.compressed = True
                result.layers.append("decompressed")
                current = parse_entity(inflated)
                continue
            break
        else:
            raise UnwrapError(UNEXPECTED_ERROR, "too many nested layers")
    except MimeError as exc:
        raise UnwrapError(UNEXPECTED_ERROR, f"malformed MIME: {exc}") from exc
    result.payload = current
    return result


def _is_compressed(entity: Entity) -> bool:
    try:
        return cms.content_type_of(entity.decoded_body()) == "compressed_data"
    except (cms.CmsError, MimeError):
        return False
