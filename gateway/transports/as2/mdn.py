"""Message Disposition Notifications (RFC 4130 §7, RFC 3798): build ours, read the partner's.

Building: always a well-formed ``multipart/report`` (optionally inside ``multipart/signed``),
``Original-Message-ID`` copied exactly as received, AS2 names swapped, ``Received-Content-MIC``
whenever we have one. Reading is lenient (AS2_NOTES §8): any case and spacing, no space after
``;``, a missing ``Original-Recipient``, with or without the ``multipart/report`` wrapper.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import micalg_name
from gateway.transports.as2.mime import (
    Entity,
    MimeError,
    parse_entity,
    quote_as2_name,
    render_headers,
    split_multipart,
    unfold_headers,
)

REPORTING_UA = "edigate AS2"
AS2_VERSION = "1.2"
PROCESSED = "processed"
DUPLICATE_WARNING = "warning: duplicate-document"
# Failure modifiers (RFC 4130 §7.4.3): the partner's product maps these to its own handling.
DECRYPTION_FAILED = "error: decryption-failed"
AUTHENTICATION_FAILED = "error: authentication-failed"
INTEGRITY_CHECK_FAILED = "error: integrity-check-failed"
UNEXPECTED_ERROR = "error: unexpected-processing-error"
UNSUPPORTED_FORMAT = "failure: unsupported format"
UNSUPPORTED_MIC = "failure: unsupported-mic-algorithm"


@dataclass(frozen=True)
class Disposition:
    """``processed``/``failed`` plus an optional modifier such as ``error: decryption-failed``."""

    kind: str = PROCESSED
    modifier: str | None = None

    @property
    def ok(self) -> bool:
        """Processed, with or without a warning."""
        return self.kind == PROCESSED and (self.modifier is None or self.modifier.startswith("warning"))

    def header_value(self) -> str:
        """The ``Disposition:`` field value."""
        tail = f"{self.kind}/{self.modifier}" if self.modifier else self.kind
        return f"automatic-action/MDN-sent-automatically; {tail}"

    @classmethod
    def parse(cls, value: str) -> Disposition:
        """Read ``automatic-action/MDN-sent-automatically;processed/Warning: duplicate-document``."""
        _, _, tail = value.partition(";")
        tail = (tail or value).strip()
        kind, _, modifier = tail.partition("/")
        modifier = " ".join(modifier.split())
        if modifier:
            head, sep, rest = modifier.partition(":")
            modifier = f"{head.strip().lower()}{sep} {rest.strip()}" if sep else modifier.lower()
        return cls(kind.strip().lower(), modifier or None)

    def __str__(self) -> str:
        return f"{self.kind}/{self.modifier}" if self.modifier else self.kind


@dataclass(frozen=True)
class BuiltMdn:
    """An MDN ready to send: HTTP headers (with Content-Length), body, and all of it for the archive."""

    headers: dict[str, str]
    body: bytes
    message_id: str

    @property
    def raw(self) -> bytes:
        """Headers and body as one byte string (what we archive)."""
        return render_headers(list(self.headers.items())) + self.body


def new_message_id(domain: str) -> str:
    """A fresh ``<…@domain>`` Message-ID without spaces, well under 255 characters."""
    safe = "".join(ch for ch in domain if ch.isalnum() or ch in ".-_") or "edigate"
    return f"<{uuid.uuid4().hex}@{safe[:100]}>"


def build_mdn(
    *,
    our_as2_id: str,
    partner_as2_id: str,
    original_message_id: str,
    disposition: Disposition,
    mic: str | None,
    signer: cms.KeyPair | None = None,
    sign_digest: str = "sha256",
    legacy_micalg: bool = False,
    explanation: str | None = None,
) -> BuiltMdn:
    """A ``multipart/report`` MDN, signed with ``signer`` when given."""
    boundary = f"----=_MDN_{uuid.uuid4().hex}"
    text = explanation or (f"The AS2 message {original_message_id} was received and {disposition}.")
    fields = [
        ("Reporting-UA", REPORTING_UA),
        ("Original-Recipient", f"rfc822; {our_as2_id}"),
        ("Final-Recipient", f"rfc822; {our_as2_id}"),
        ("Original-Message-ID", original_message_id),
    ]
    if mic:
        fields.append(("Received-Content-MIC", mic))
    fields.append(("Disposition", disposition.header_value()))
    notification = b"".join(f"{k}: {v}\r\n".encode() for k, v in fields)
    report_body = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        f"{text}\r\n".encode()
        + f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n".encode()
        + notification
        + f"\r\n--{boundary}--\r\n".encode()
    )
    report_type = f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    if signer is None:
        content_type, body = report_type, report_body
    else:
        signed_entity = render_headers([("Content-Type", report_type)]) + report_body
        signature = cms.sign(signed_entity, signer, digest=sign_digest)
        outer = f"----=_Signed_{uuid.uuid4().hex}"
        micalg = micalg_name(sign_digest, legacy=legacy_micalg)
        content_type = (
            f'multipart/signed; protocol="application/pkcs7-signature"; micalg={micalg}; boundary="{outer}"'
        )
        body = (
            f"--{outer}\r\n".encode()
            + signed_entity
            + f"\r\n--{outer}\r\n".encode()
            + b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
            + base64.encodebytes(signature).replace(b"\n", b"\r\n")
            + f"\r\n--{outer}--\r\n".encode()
        )
    message_id = new_message_id(our_as2_id)
    headers = {
        "AS2-Version": AS2_VERSION,
        "AS2-From": quote_as2_name(our_as2_id),
        "AS2-To": quote_as2_name(partner_as2_id),
        "Message-ID": message_id,
        "Subject": "AS2 MDN",
        "MIME-Version": "1.0",
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
    }
    return BuiltMdn(headers, body, message_id)


# --- reading an MDN ------------------------------------------------------------------------------


class MdnError(ValueError):
    """The MDN cannot be read, or its signature does not verify."""


@dataclass(frozen=True)
class ParsedMdn:
    """What an MDN says, and whether its signature verified."""

    original_message_id: str | None
    disposition: Disposition
    mic: str | None
    signed: bool
    fields: dict[str, str] = field(default_factory=dict)
    signature_digest: str | None = None


def _notification_fields(entity: Entity) -> dict[str, str]:
    kind = entity.content_type
    if kind == "message/disposition-notification":
        return unfold_headers(entity.decoded_body())
    if kind.startswith("multipart/"):
        boundary = entity.param("boundary")
        if not boundary:
            raise MdnError("multipart MDN without a boundary")
        for part in split_multipart(entity.body, boundary):
            inner = parse_entity(part)
            if inner.content_type == "message/disposition-notification":
                return unfold_headers(inner.decoded_body())
        raise MdnError("no message/disposition-notification part in the MDN")
    raise MdnError(f"an MDN cannot be {kind}")


def parse_mdn(
    content_type: str,
    body: bytes,
    *,
    partner_certs: Sequence[x509.Certificate] = (),
    content_transfer_encoding: str | None = None,
    allow_expired: bool = False,
) -> ParsedMdn:
    """Read an MDN from its top-level Content-Type and body; verify it if it is signed.

    ``allow_expired`` is the partner's ``allow_expired_certificates``, as for its messages.
    """
    try:
        top = parse_entity(
            render_headers(
                [("Content-Type", content_type)]
                + (
                    [("Content-Transfer-Encoding", content_transfer_encoding)]
                    if content_transfer_encoding
                    else []
                )
            )
            + body
        )
        top = Entity(top.raw, top.headers, top.decoded_body())
        signed = False
        signature_digest = None
        if top.content_type == "multipart/signed":
            boundary = top.param("boundary")
            if not boundary:
                raise MdnError("signed MDN without a boundary")
            parts = split_multipart(top.body, boundary)
            if len(parts) < 2:
                raise MdnError("signed MDN without a signature part")
            signature = parse_entity(parts[1]).decoded_body()
            try:
                verified = cms.verify_detached(
                    signature, parts[0], partner_certs, allow_expired=allow_expired
                )
            except cms.CmsError as first:
                canonical = parts[0].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                try:
                    verified = cms.verify_detached(
                        signature, canonical, partner_certs, allow_expired=allow_expired
                    )
                except cms.CmsError:
                    raise MdnError(f"MDN signature does not verify: {first}") from first
            signed, signature_digest = True, verified.digest
            top = parse_entity(parts[0])
        fields = _notification_fields(top)
    except MimeError as exc:
        raise MdnError(f"unreadable MDN: {exc}") from exc
    mic = fields.get("received-content-mic")
    return ParsedMdn(
        original_message_id=fields.get("original-message-id"),
        disposition=Disposition.parse(fields.get("disposition", "")),
        mic=" ".join(mic.split()) if mic else None,
        signed=signed,
        fields=fields,
        signature_digest=signature_digest,
    )
