"""The ``openssl cms`` CLI as a second independent peer: it sends what pyas2lib cannot make
(AES-GCM, OAEP, several recipients, BER streaming, LF-only and binary signed content, base64
transfer encoding, compress-after-sign) and decrypts and verifies everything we send."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest

from gateway.transports.as2 import cms
from gateway.transports.as2.building import BuildOptions, build_message
from gateway.transports.as2.mdn import parse_mdn
from gateway.transports.as2.mime import parse_entity, render_headers
from tests.conftest_api import LiveServer
from tests.conftest_as2 import OUR_AS2_ID, PARTNER_AS2_ID, As2Setup, cert_pem, key_pem, openssl_available

pytestmark = pytest.mark.integration

PAYLOAD = b"ISA*00*LF ONLY~\nGS*PO~\nST*850*0001~\nSE*2*0001~\n"


class Peer:
    """Files and openssl invocations for one test."""

    def __init__(self, tmp: Path, setup: As2Setup) -> None:
        self.tmp, self.setup = tmp, setup
        self.binary = openssl_available()
        for name, pair in (
            ("partner", setup.certs.partner),
            ("ours", setup.certs.ours),
            ("stranger", setup.certs.stranger),
        ):
            (tmp / f"{name}.pem").write_bytes(cert_pem(pair))
            (tmp / f"{name}.key").write_bytes(key_pem(pair))

    def run(self, *args: str, data: bytes = b"") -> bytes:
        """Run ``openssl`` with ``data`` on stdin; its stdout."""
        done = subprocess.run(
            [self.binary, *args], input=data, capture_output=True, check=False, cwd=self.tmp
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout

    def sign(self, entity: bytes, *extra: str, crlf: bool = True) -> tuple[str, bytes]:
        """multipart/signed (S/MIME output) over ``entity``: (Content-Type, body)."""
        args = [
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-signer",
            "partner.pem",
            "-inkey",
            "partner.key",
            "-outform",
            "SMIME",
            *extra,
        ]
        if crlf:
            args.append("-crlfeol")
        signed = parse_entity(self.run(*args, data=entity))
        return signed.headers["content-type"], signed.body

    def encrypt(self, entity: bytes, *options: str, recipients: tuple[str, ...] = ("ours.pem",)) -> bytes:
        """DER EnvelopedData/AuthEnvelopedData for the recipients."""
        args = ["cms", "-encrypt", "-binary", "-outform", "DER", *options]
        for recipient in recipients:
            args += ["-recip", recipient]
        if "-oaep" in options:
            args.remove("-oaep")
            args += ["-keyopt", "rsa_padding_mode:oaep"]
        return self.run(*args, data=entity)


def _post(
    server: LiveServer,
    content_type: str,
    body: bytes,
    *,
    message_id: str,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {
        "AS2-From": PARTNER_AS2_ID,
        "AS2-To": f'"{OUR_AS2_ID}"',
        "AS2-Version": "1.2",
        "Message-ID": message_id,
        "Content-Type": content_type,
        "Disposition-Notification-To": "edi@acme.example",
        "Disposition-Notification-Options": (
            "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256"
        ),
    }
    headers.update(extra or {})
    return httpx.post(f"{server.url}/as2", content=body, headers=headers, timeout=30)


def _payload_entity(payload: bytes = PAYLOAD) -> bytes:
    return (
        render_headers(
            [
                ("Content-Type", "application/EDI-X12"),
                ("Content-Disposition", 'attachment; filename="inv_810.edi"'),
            ]
        )
        + payload
    )


def _check_mdn(peer: Peer, response: httpx.Response, signed_entity: bytes) -> None:
    """openssl verifies our MDN; its MIC equals the digest of what the partner signed."""
    raw = render_headers(list(response.headers.items())) + response.content
    (peer.tmp / "mdn.eml").write_bytes(raw)
    peer.run(
        "cms", "-verify", "-inform", "SMIME", "-in", "mdn.eml", "-CAfile", "ours.pem", "-out", "/dev/null"
    )
    mdn = parse_mdn(
        response.headers["content-type"], response.content, partner_certs=[peer.setup.certs.ours.cert]
    )
    assert str(mdn.disposition) == "processed"
    expected = base64.b64encode(hashlib.sha256(signed_entity).digest()).decode()
    assert mdn.mic == f"{expected}, sha-256"


def _stored_payload(setup: As2Setup) -> bytes:
    from sqlalchemy import select

    from gateway.store.models import Message

    with setup.app.state.db.sessions() as session:
        message = session.scalars(select(Message)).one()
        return bytes(setup.app.state.blobs.open(message.content_sha256).read())


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(("-aes-256-gcm",), id="aes256-gcm"),
        pytest.param(("-aes-128-gcm",), id="aes128-gcm"),
        pytest.param(("-aes-192-cbc", "-oaep"), id="aes192-oaep"),
        pytest.param(("-des-ede3-cbc",), id="3des"),
        pytest.param(("-aes-128-cbc", "-stream"), id="ber-streamed"),
    ],
)
def test_openssl_signed_and_encrypted_message_is_processed_with_a_verifiable_mdn(
    tmp_path: Path, as2_server: LiveServer, as2_app: As2Setup, options: tuple[str, ...]
) -> None:
    peer = Peer(tmp_path, as2_app)
    entity = _payload_entity(PAYLOAD.replace(b"\n", b"\r\n"))
    content_type, body = peer.sign(entity)
    signed_entity = render_headers([("Content-Type", content_type)]) + body
    envelope = peer.encrypt(signed_entity, *options)
    response = _post(
        as2_server,
        "application/pkcs7-mime; smime-type=enveloped-data",
        envelope,
        message_id=f"<{tmp_path.name}@acme>",
    )
    _check_mdn(peer, response, entity)
    assert _stored_payload(as2_app) == PAYLOAD.replace(b"\n", b"\r\n")


def test_message_for_several_recipients_is_opened_with_our_key_whatever_its_position(
    tmp_path: Path, as2_server: LiveServer, as2_app: As2Setup
) -> None:
    peer = Peer(tmp_path, as2_app)
    entity = _payload_entity(PAYLOAD.replace(b"\n", b"\r\n"))
    content_type, body = peer.sign(entity)
    envelope = peer.encrypt(
        render_headers([("Content-Type", content_type)]) + body,
        "-aes-256-cbc",
        recipients=("stranger.pem", "ours.pem"),
    )
    response = _post(
        as2_server, "application/pkcs7-mime; smime-type=enveloped-data", envelope, message_id="<multi@acme>"
    )
    _check_mdn(peer, response, entity)


@pytest.mark.parametrize("payload", [PAYLOAD, bytes(range(256)) * 8], ids=["lf-only-text", "binary"])
def test_signed_content_is_verified_over_the_bytes_as_sent(
    tmp_path: Path, as2_server: LiveServer, as2_app: As2Setup, payload: bytes
) -> None:
    peer = Peer(tmp_path, as2_app)
    entity = (
        render_headers(
            [("Content-Type", "application/octet-stream"), ("Content-Transfer-Encoding", "binary")]
        )
        + payload
    )
    content_type, body = peer.sign(entity, crlf=False)
    response = _post(as2_server, content_type, body, message_id=f"<{tmp_path.name}@acme>")
    assert b"processed" in response.content and b"error" not in response.content
    assert _stored_payload(as2_app) == payload


def test_base64_transfer_encoding_on_the_http_body_is_accepted(
    tmp_path: Path, as2_server: LiveServer, as2_app: As2Setup
) -> None:
    peer = Peer(tmp_path, as2_app)
    entity = _payload_entity(PAYLOAD.replace(b"\n", b"\r\n"))
    content_type, body = peer.sign(entity)
    envelope = peer.encrypt(render_headers([("Content-Type", content_type)]) + body, "-aes-128-cbc")
    response = _post(
        as2_server,
        "application/pkcs7-mime; smime-type=enveloped-data",
        base64.encodebytes(envelope),
        message_id="<b64@acme>",
        extra={"Content-Transfer-Encoding": "base64"},
    )
    _check_mdn(peer, response, entity)


def test_compress_after_sign_is_accepted_and_the_mic_covers_the_signed_entity(
    tmp_path: Path, as2_server: LiveServer, as2_app: As2Setup
) -> None:
    peer = Peer(tmp_path, as2_app)
    entity = _payload_entity(PAYLOAD.replace(b"\n", b"\r\n"))
    content_type, body = peer.sign(entity)
    compressed = render_headers(
        [("Content-Type", "application/pkcs7-mime; smime-type=compressed-data")]
    ) + cms.compress(render_headers([("Content-Type", content_type)]) + body)  # openssl on Debian has no zlib
    envelope = peer.encrypt(compressed, "-aes-256-cbc")
    response = _post(
        as2_server, "application/pkcs7-mime; smime-type=enveloped-data", envelope, message_id="<cas@acme>"
    )
    _check_mdn(peer, response, entity)


@pytest.mark.parametrize("cipher", ["aes256-cbc", "aes128-cbc", "aes256-gcm", "3des"])
def test_openssl_decrypts_and_verifies_what_we_send(tmp_path: Path, as2_app: As2Setup, cipher: str) -> None:
    peer = Peer(tmp_path, as2_app)
    ours, partner = as2_app.certs.ours, as2_app.certs.partner
    built = build_message(
        PAYLOAD,
        content_type="application/EDI-X12",
        filename="po.edi",
        as2_from=OUR_AS2_ID,
        as2_to=PARTNER_AS2_ID,
        message_id="<x@DISTCO>",
        options=BuildOptions(sign="sha256", encrypt=cipher, compress=False),
        signer=ours,
        recipients=[partner.cert],
    )
    (tmp_path / "body.der").write_bytes(built.body)
    decrypted = peer.run(
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        "body.der",
        "-recip",
        "partner.pem",
        "-inkey",
        "partner.key",
    )
    (tmp_path / "signed.mime").write_bytes(b"MIME-Version: 1.0\r\n" + decrypted)
    content = peer.run(
        "cms",
        "-verify",
        "-binary",
        "-crlfeol",
        "-inform",
        "SMIME",
        "-in",
        "signed.mime",
        "-CAfile",
        "ours.pem",
    )
    assert content.endswith(PAYLOAD)
    expected = base64.b64encode(hashlib.sha256(content).digest()).decode()
    assert built.mic == f"{expected}, sha-256"
