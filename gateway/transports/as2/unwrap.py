"""Open an inbound AS2 body: decrypt, verify, decompress (in either order), find the payload, MIC.

No database, no network. The MIC follows RFC 4130 §7.3.1 and RFC 5402 §4: over the signed
entity (headers included) when signed; over the decrypted entity when encrypted but unsigned;
over the content alone otherwise. Signatures are checked over the bytes exactly as received,
falling back to CRLF canonicalisation only for text parts or parts without a transfer encoding.

Bodies are spans: each layer streams into a spool (memory while small, a temporary file past
``spans.SPOOL_MEMORY``) and the signed part, the signature and the payload are windows on the
layer they sit in, so a large message is held neither in memory nor twice. ``Unwrapped.close``
releases the spools.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
    Part,
    canonical_span,
    decoded_span,
    parse_part,
    split_parts,
)
from gateway.transports.as2.spans import Span, Spool

MAX_LAYERS = 6
MAX_SIGNATURE_BYTES = 1024 * 1024
_PKCS7_MIME = ("application/pkcs7-mime", "application/x-pkcs7-mime")


class UnwrapError(Exception):
    """The body could not be opened; ``modifier`` is the MDN disposition modifier to answer with."""

    def __init__(self, modifier: str, message: str) -> None:
        super().__init__(message)
        self.modifier = modifier


@dataclass
class Unwrapped:
    """The payload and what was done to reach it; ``close()`` releases its spools."""

    payload: Part
    content: Span | None = None  # the payload's body, transfer encoding undone
    encrypted: bool = False
    signed: bool = False
    compressed: bool = False
    signature_digest: str | None = None
    mic_source: Span | None = None
    layers: list[str] = field(default_factory=list)
    spool_dir: Path | None = None
    spools: list[Spool] = field(default_factory=list, repr=False)

    def spool(self) -> Spool:
        """A new spool released with this result."""
        spool = Spool(self.spool_dir)
        self.spools.append(spool)
        return spool

    def payload_content(self) -> Span:
        """The payload's body with its transfer encoding undone."""
        if self.content is None:
            self.content = decoded_span(self.payload, self.spool())
        return self.content

    def mic(self, digest: str, *, legacy: bool = False) -> str:
        """``base64(digest), alg`` over the right bytes for this message."""
        source = self.mic_source if self.mic_source is not None else self.payload_content()
        value = base64.b64encode(digest_bytes(digest, source.chunks())).decode("ascii")
        return f"{value}, {micalg_name(digest, legacy=legacy)}"

    def close(self) -> None:
        """Delete the temporary files behind the layers."""
        for spool in self.spools:
            spool.close()
        self.spools.clear()


def top_entity(
    content_type: str,
    body: bytes | Span,
    content_transfer_encoding: str | None = None,
    content_disposition: str | None = None,
) -> Part:
    """The outer entity from HTTP headers (a transfer encoding on the HTTP level is undone when read)."""
    headers = {"content-type": (content_type or "application/octet-stream").strip()}
    if content_disposition:
        headers["content-disposition"] = content_disposition.strip()
    if content_transfer_encoding:
        headers["content-transfer-encoding"] = content_transfer_encoding.strip()
    return Part(headers, body if isinstance(body, Span) else Span.of(body))


def _smime_type(entity: Part) -> str:
    return (entity.param("smime-type") or "").lower()


def _verify(
    result: Unwrapped, entity: Part, certs: Sequence[x509.Certificate], allow_expired: bool
) -> tuple[Span, cms.Verified]:
    boundary = entity.param("boundary")
    if not boundary:
        raise UnwrapError(AUTHENTICATION_FAILED, "multipart/signed without a boundary")
    parts = split_parts(decoded_span(entity, result.spool()), boundary)
    if len(parts) < 2:
        raise UnwrapError(AUTHENTICATION_FAILED, "multipart/signed without a signature part")
    signed_part = parts[0]
    if len(parts[1]) > MAX_SIGNATURE_BYTES:
        raise UnwrapError(AUTHENTICATION_FAILED, "the signature part is too large")
    signature = parse_part(parts[1]).decoded_body()
    try:
        return signed_part, cms.verify_detached(signature, signed_part, certs, allow_expired=allow_expired)
    except cms.SignatureInvalid as first:
        why: Exception = first
        for form in _canonical_forms(result, signed_part):
            try:
                return form, cms.verify_detached(signature, form, certs, allow_expired=allow_expired)
            except cms.CmsError as exc:
                if "digest does not match" not in str(exc):  # the form matched; say why it still failed
                    why = exc
        modifier = INTEGRITY_CHECK_FAILED if "digest does not match" in str(why) else AUTHENTICATION_FAILED
        raise UnwrapError(modifier, str(why)) from first
    except (cms.CmsError, UnsupportedAlgorithm) as exc:
        raise UnwrapError(AUTHENTICATION_FAILED, f"unusable signature: {exc}") from exc


def _canonical_forms(result: Unwrapped, signed_part: Span) -> Iterator[Span]:
    """RFC 5751 §3.1.1 canonical forms of a signed part that arrived with bare LFs, to retry with.

    A text part (or one without a transfer encoding) has every line ending made CRLF. Any part
    then has its MIME headers made CRLF with the body left as it is: a ``binary`` body is signed
    as its bytes, so Mendelson signs CRLF headers over an LF payload, and a copy of the message
    whose headers lost their CRs (stored with LF line ends, relayed by a text-mode hop) still
    verifies over what was signed. Canonicalising only ever adds CRs, so a form no longer than
    the part (or than a form already tried) is the same bytes and is not yielded.
    """
    inner = parse_part(signed_part)
    tried = len(signed_part)
    if inner.content_type.startswith("text/") or "content-transfer-encoding" not in inner.headers:
        canonical = canonical_span(signed_part, result.spool())
        if len(canonical) != tried:
            tried = len(canonical)
            yield canonical
    head = signed_part.read(0, len(signed_part) - len(inner.body))
    crlf_head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if len(crlf_head) + len(inner.body) not in (len(signed_part), tried):
        spool = result.spool()
        spool.write(crlf_head)
        for chunk in inner.body.chunks():
            spool.write(chunk)
        yield spool.span()


def unwrap(
    entity: Part | Entity,
    *,
    keys: Sequence[cms.KeyPair],
    verify_certs: Sequence[x509.Certificate],
    allow_expired: bool = False,
    max_bytes: int | None = None,
    spool_dir: Path | None = None,
) -> Unwrapped:
    """Peel encryption, signature and compression layers until the payload is reached.

    Layers are spooled under ``spool_dir`` (the system's temporary directory by default); on
    success the caller closes the result, on failure the spools are already released.
    """
    current = Part(entity.headers, Span.of(entity.body)) if isinstance(entity, Entity) else entity
    result = Unwrapped(current, spool_dir=spool_dir)
    try:
        _peel(result, current, keys, verify_certs, allow_expired, max_bytes)
    except BaseException:
        result.close()
        raise
    return result


def _peel(
    result: Unwrapped,
    current: Part,
    keys: Sequence[cms.KeyPair],
    verify_certs: Sequence[x509.Certificate],
    allow_expired: bool,
    max_bytes: int | None,
) -> None:
    try:
        for _ in range(MAX_LAYERS):
            kind = current.content_type
            smime = _smime_type(current)
            if (
                kind in _PKCS7_MIME
                and smime in ("enveloped-data", "authenveloped-data", "")
                and not (smime == "" and _is_compressed(result, current))
            ):
                if result.encrypted:
                    raise UnwrapError(UNEXPECTED_ERROR, "encrypted twice")
                opened = result.spool()
                try:
                    cms.decrypt_to(decoded_span(current, result.spool()), keys, opened)
                except (cms.CmsError, UnsupportedAlgorithm, MimeError):
                    raise UnwrapError(DECRYPTION_FAILED, "decryption failed") from None
                result.encrypted = True
                result.layers.append("decrypted")
                current = parse_part(opened.span())
                if not result.signed:
                    result.mic_source = opened.span()
                continue
            if kind == "multipart/signed":
                if result.signed:
                    raise UnwrapError(UNEXPECTED_ERROR, "signed twice")
                signed_part, verified = _verify(result, current, verify_certs, allow_expired)
                result.signed = True
                result.signature_digest = verified.digest
                result.mic_source = signed_part
                result.layers.append("verified")
                current = parse_part(signed_part)
                continue
            if kind in _PKCS7_MIME and smime in ("compressed-data", ""):
                if result.compressed:
                    raise UnwrapError(UNEXPECTED_ERROR, "compressed twice")
                inflated = result.spool()
                try:
                    cms.decompress_to(decoded_span(current, result.spool()), inflated, max_bytes=max_bytes)
                except (cms.CmsError, UnsupportedAlgorithm) as exc:
                    raise UnwrapError(UNEXPECTED_ERROR, f"decompression failed: {exc}") from exc
                result.compressed = True
                result.layers.append("decompressed")
                current = parse_part(inflated.span())
                continue
            break
        else:
            raise UnwrapError(UNEXPECTED_ERROR, "too many nested layers")
        result.payload = current
        result.payload_content()
    except MimeError as exc:
        raise UnwrapError(UNEXPECTED_ERROR, f"malformed MIME: {exc}") from exc


def _is_compressed(result: Unwrapped, entity: Part) -> bool:
    try:
        return cms.content_type_of(decoded_span(entity, result.spool())) == "compressed_data"
    except (cms.CmsError, MimeError):
        return False
