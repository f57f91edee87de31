"""A signed ``binary`` part whose MIME headers arrive with bare LFs still verifies.

The shape of Mendelson's signed messages: the signature covers the part's headers in CRLF and
the ``Content-Transfer-Encoding: binary`` payload as its bytes (LF line ends); a copy of the
message whose headers lost their CRs must verify over that form, and the MIC is taken over it.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.transports.as2 import cms
from gateway.transports.as2.mdn import AUTHENTICATION_FAILED, INTEGRITY_CHECK_FAILED
from gateway.transports.as2.unwrap import UnwrapError, top_entity, unwrap
from tests.conftest_as2 import As2Certs

PAYLOAD = b"UNB+UNOA:2+SENDER:14+RECEIVER:14+140407:0910+5'\nUNH+1+ORDERS:D:96A:UN'\nUNT+2+1'\nUNZ+1+5'\n"
PART_HEADERS = [
    b"Content-Type: application/EDI-Consent",
    b"Content-Transfer-Encoding: binary",
    b"Content-Disposition: attachment; filename=payload.txt",
]
BOUNDARY = "----=_Part_1_1464954728.42"
SIGNED = b"\r\n".join(PART_HEADERS) + b"\r\n\r\n" + PAYLOAD  # what the sender signs


def _received(signature: bytes, payload: bytes = PAYLOAD) -> tuple[str, bytes]:
    """The multipart/signed body as it arrives: every line end a bare LF, the payload untouched."""
    delimiter = b"--" + BOUNDARY.encode()
    body = (
        delimiter
        + b"\n"
        + b"\n".join(PART_HEADERS)
        + b"\n\n"
        + payload
        + b"\n"
        + delimiter
        + b"\nContent-Type: application/pkcs7-signature; name=smime.p7s; smime-type=signed-data\n"
        + b"Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(signature)
        + delimiter
        + b"--\n"
    )
    protocol = 'protocol="application/pkcs7-signature"'
    return f'multipart/signed; {protocol}; micalg=sha1;  boundary="{BOUNDARY}"', body


def test_binary_part_with_lf_headers_verifies_over_crlf_headers(as2_certs: As2Certs) -> None:
    content_type, body = _received(cms.sign(SIGNED, as2_certs.partner, digest="sha1"))
    opened = unwrap(top_entity(content_type, body), keys=[], verify_certs=[as2_certs.partner.cert])
    try:
        assert opened.signed and opened.signature_digest == "sha1"
        assert opened.payload.content_type == "application/edi-consent"
        assert opened.payload_content().read() == PAYLOAD  # the binary body is not canonicalised
        assert opened.mic("sha1") == base64.b64encode(hashlib.sha1(SIGNED).digest()).decode() + ", sha-1"
    finally:
        opened.close()


def test_binary_part_with_lf_headers_and_a_changed_payload_fails_integrity(as2_certs: As2Certs) -> None:
    content_type, body = _received(
        cms.sign(SIGNED, as2_certs.partner, digest="sha1"), PAYLOAD.replace(b"ORDERS", b"INVOIC")
    )
    with pytest.raises(UnwrapError) as failure:
        unwrap(top_entity(content_type, body), keys=[], verify_certs=[as2_certs.partner.cert])
    assert failure.value.modifier == INTEGRITY_CHECK_FAILED


def test_the_canonical_form_s_own_failure_is_reported(as2_certs: As2Certs) -> None:
    """The content matches once canonical: the answer is the certificate, not the integrity."""
    content_type, body = _received(cms.sign(SIGNED, as2_certs.partner, digest="sha1"))
    with pytest.raises(UnwrapError) as failure:
        unwrap(top_entity(content_type, body), keys=[], verify_certs=[as2_certs.stranger.cert])
    assert failure.value.modifier == AUTHENTICATION_FAILED
    assert "digest does not match" not in str(failure.value)
