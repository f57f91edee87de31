"""Build an outbound AS2 message: payload entity → compress → sign → encrypt, and its MIC.

Defaults follow rfc4130bis: SHA-256 and AES-256-CBC, compression before signing, binary
transfer encoding; SHA-1/3DES are only produced when a partner's profile asks for them.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate

from cryptography import x509

from gateway.transports.as2 import cms
from gateway.transports.as2.algorithms import digest_bytes, micalg_name
from gateway.transports.as2.mdn import AS2_VERSION
from gateway.transports.as2.mime import quote_as2_name, render_headers


@dataclass(frozen=True)
class BuildOptions:
    """How to wrap one message."""

    sign: str | None = "sha256"  # digest, or None
    encrypt: str | None = "aes256-cbc"  # cipher, or None
    compress: bool = False
    compress_after_sign: bool = False
    pss: bool = False
    oaep: bool = False
    signed_attributes: bool = True
    legacy_micalg: bool = False
    base64_transfer: bool = False
    quote_filename: bool = True
    mdn_mode: str = "sync"  # sync | async | none
    mdn_signed: bool = True
    mdn_url: str | None = None  # our async MDN endpoint
    mdn_digests: tuple[str, ...] = ("sha256",)


@dataclass(frozen=True)
class BuiltMessage:
    """HTTP headers and body to POST, and the MIC we expect back in the MDN."""

    message_id: str
    headers: dict[str, str]
    body: bytes
    mic: str
    mic_digest: str


def message_id_for(ident: str, as2_id: str) -> str:
    """A stable ``<ident@as2-id>`` Message-ID (the same on every retry)."""
    domain = "".join(ch for ch in as2_id if ch.isalnum() or ch in ".-_") or "edigate"
    return f"<{ident}@{domain[:100]}>"


def _payload_entity(payload: bytes, content_type: str, filename: str | None, options: BuildOptions) -> bytes:
    headers = [("Content-Type", content_type)]
    if filename:
        safe = filename.replace('"', "_").replace("\r", "").replace("\n", "")
        value = f'"{safe}"' if options.quote_filename else safe
        headers.append(("Content-Disposition", f"attachment; filename={value}"))
    headers.append(("Content-Transfer-Encoding", "binary"))
    return render_headers(headers) + payload


def _compressed_entity(entity: bytes) -> bytes:
    return render_headers(
        [
            ("Content-Type", 'application/pkcs7-mime; smime-type=compressed-data; name="smime.p7z"'),
            ("Content-Transfer-Encoding", "binary"),
            ("Content-Disposition", 'attachment; filename="smime.p7z"'),
        ]
    ) + cms.compress(entity)


def _signed(entity: bytes, signer: cms.KeyPair, options: BuildOptions, digest: str) -> tuple[str, bytes]:
    signature = cms.sign(
        entity, signer, digest=digest, pss=options.pss, signed_attributes=options.signed_attributes
    )
    boundary = f"----=_Part_{uuid.uuid4().hex}"
    micalg = micalg_name(digest, legacy=options.legacy_micalg)
    content_type = (
        f'multipart/signed; protocol="application/pkcs7-signature"; micalg={micalg}; boundary="{boundary}"'
    )
    body = (
        f"--{boundary}\r\n".encode()
        + entity
        + f"\r\n--{boundary}\r\n".encode()
        + b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
        + base64.encodebytes(signature).replace(b"\n", b"\r\n")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return content_type, body


def build_message(
    payload: bytes,
    *,
    content_type: str,
    filename: str | None,
    as2_from: str,
    as2_to: str,
    message_id: str,
    options: BuildOptions,
    signer: cms.KeyPair | None,
    recipients: Sequence[x509.Certificate],
    subject: str = "EDI message",
) -> BuiltMessage:
    """The HTTP request for one AS2 message, and the MIC the partner should return."""
    entity = _payload_entity(payload, content_type, filename, options)
    mic_digest = options.mdn_digests[0] if options.mdn_digests else (options.sign or "sha256")
    if options.compress and not options.compress_after_sign:
        entity = _compressed_entity(entity)
    mic_source = payload
    top_type: str
    top_body: bytes
    if options.sign:
        if signer is None:
            raise ValueError("signing needs one of our key pairs")
        mic_source = entity
        top_type, top_body = _signed(entity, signer, options, options.sign)
        entity = render_headers([("Content-Type", top_type)]) + top_body
    if options.compress and options.compress_after_sign:
        entity = _compressed_entity(entity)
        top_type = 'application/pkcs7-mime; smime-type=compressed-data; name="smime.p7z"'
        top_body = entity.split(b"\r\n\r\n", 1)[1]
    if options.encrypt:
        if not recipients:
            raise ValueError("encryption needs the partner's certificate")
        if not options.sign:
            mic_source = entity
        top_body = cms.encrypt(entity, recipients[:1], cipher=options.encrypt, oaep=options.oaep)
        top_type = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    elif not options.sign and not options.compress:
        top_type, top_body = content_type, payload
    elif not options.sign:
        top_body = entity.split(b"\r\n\r\n", 1)[1]
        top_type = 'application/pkcs7-mime; smime-type=compressed-data; name="smime.p7z"'
    mic = f"{base64.b64encode(digest_bytes(mic_digest, mic_source)).decode()}, {micalg_name(mic_digest)}"
    headers = {
        "AS2-Version": AS2_VERSION,
        "AS2-From": quote_as2_name(as2_from),
        "AS2-To": quote_as2_name(as2_to),
        "Message-ID": message_id,
        "Subject": subject,
        "Date": formatdate(usegmt=True),
        "MIME-Version": "1.0",
        "EDIINT-Features": "CMS",
        "Content-Type": top_type,
    }
    if not options.encrypt and not options.sign and not options.compress and filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if options.mdn_mode != "none":
        headers["Disposition-Notification-To"] = as2_from
        if options.mdn_signed:
            algs = ", ".join(micalg_name(d, legacy=options.legacy_micalg) for d in options.mdn_digests)
            headers["Disposition-Notification-Options"] = (
                f"signed-receipt-protocol=required, pkcs7-signature; signed-receipt-micalg=required, {algs}"
            )
        if options.mdn_mode == "async" and options.mdn_url:
            headers["Receipt-Delivery-Option"] = options.mdn_url
    if options.base64_transfer:
        headers["Content-Transfer-Encoding"] = "base64"
        top_body = base64.encodebytes(top_body).replace(b"\n", b"\r\n")
    else:
        headers["Content-Transfer-Encoding"] = "binary"
    return BuiltMessage(message_id, headers, top_body, mic, mic_digest)
