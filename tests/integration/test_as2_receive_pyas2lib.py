"""pyas2lib (an implementation nobody here wrote) sends to our /as2 over real HTTP and checks our MDNs."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.store.enums import Transport
from gateway.store.models import Message
from gateway.transports.as2.models import As2Exchange
from tests.conftest_api import LiveServer
from tests.conftest_as2 import As2Setup, our_station, partner_org, response_bytes

pytestmark = pytest.mark.integration

X12 = (
    b"ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         "
    b"*240101*1200*U*00401*000000001*0*T*>~"
    b"GS*PO*ACMERETAIL*DISTCO*20240101*1200*1*X*004010~ST*850*0001~BEG*00*SA*PO-1**20240101~SE*3*0001~"
    b"GE*1*1~IEA*1*000000001~"
)


def _send(
    pyas2: ModuleType, setup: As2Setup, server: LiveServer, payload: bytes = X12, **station: Any
) -> tuple[httpx.Response, Any]:
    message = pyas2.Message(partner_org(pyas2, setup.certs), our_station(pyas2, setup.certs, **station))
    message.build(payload, filename="po_850.edi", content_type="application/EDI-X12")
    response = httpx.post(f"{server.url}/as2", content=message.content, headers=message.headers, timeout=30)
    return response, message


def _mdn(pyas2: ModuleType, response: httpx.Response, message: Any) -> tuple[str, Any]:
    status, detail = pyas2.Mdn().parse(response_bytes(response), find_message_cb=lambda mid, rcpt: message)
    return str(status), detail


def _messages(setup: As2Setup) -> list[Message]:
    with setup.app.state.db.sessions() as session:  # closing (not rolling back) keeps the rows loaded
        return list(session.scalars(select(Message).where(Message.transport == Transport.AS2)))


MATRIX = [
    pytest.param(
        {"sign": True, "digest_alg": "sha256", "encrypt": True, "enc_alg": "aes_256_cbc", "compress": True},
        id="sha256-aes256-compressed",
    ),
    pytest.param(
        {"sign": True, "digest_alg": "sha1", "encrypt": True, "enc_alg": "tripledes_192_cbc"},
        id="sha1-3des-legacy",
    ),
    pytest.param(
        {"sign": True, "digest_alg": "sha512", "encrypt": True, "enc_alg": "aes_128_cbc"}, id="sha512-aes128"
    ),
    pytest.param({"sign": True, "digest_alg": "sha384", "encrypt": False}, id="signed-only"),
    pytest.param({"sign": False, "encrypt": True, "enc_alg": "aes_192_cbc"}, id="encrypted-only"),
    pytest.param({"sign": False, "encrypt": False, "compress": True}, id="compressed-only"),
    pytest.param({"sign": False, "encrypt": False}, id="plain"),
    pytest.param(
        {
            "sign": True,
            "digest_alg": "sha256",
            "encrypt": True,
            "enc_alg": "aes_256_cbc",
            "sign_alg": "rsassa_pss",
        },
        id="pss",
    ),
    pytest.param(
        {
            "sign": True,
            "digest_alg": "sha256",
            "encrypt": True,
            "enc_alg": "aes_256_cbc",
            "key_enc_alg": "rsaes_oaep",
        },
        id="oaep",
    ),
]


@pytest.mark.parametrize("settings", MATRIX)
def test_pyas2lib_message_is_processed_and_its_signed_mdn_verifies_with_the_same_mic(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType, settings: dict[str, Any]
) -> None:
    # Partners request the MIC in the digest they sign with; pyas2lib checks the MIC in that digest.
    digest = settings.get("digest_alg", "sha256")
    response, message = _send(
        pyas2lib_module, as2_app, as2_server, mdn_mode="SYNC", mdn_digest_alg=digest, **settings
    )
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    status, detail = _mdn(pyas2lib_module, response, message)
    assert (status, detail) == ("processed", None)
    stored = _messages(as2_app)
    assert len(stored) == 1
    assert stored[0].filename == "po_850.edi"
    assert stored[0].transport_message_id == f"<{message.message_id}>"
    assert stored[0].receipt_sha256 is not None
    assert as2_app.app.state.blobs.open(stored[0].content_sha256).read() == X12


def test_crlf_text_payload_arrives_unchanged(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    # pyas2lib canonicalises LF and binary payloads to CRLF before signing (AS2_NOTES trap 1), so
    # LF-only and binary payloads are sent by the openssl peer instead (test_as2_openssl.py).
    payload = X12.replace(b"~", b"~\r\n")
    response, message = _send(
        pyas2lib_module,
        as2_app,
        as2_server,
        payload,
        sign=True,
        encrypt=True,
        enc_alg="aes_256_cbc",
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    assert _mdn(pyas2lib_module, response, message) == ("processed", None)
    assert as2_app.app.state.blobs.open(_messages(as2_app)[0].content_sha256).read() == payload


def test_unsigned_mdn_is_returned_when_the_sender_asks_for_no_signature(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    response, message = _send(
        pyas2lib_module, as2_app, as2_server, sign=True, encrypt=True, enc_alg="aes_256_cbc", mdn_mode="SYNC"
    )
    assert response.headers["content-type"].startswith("multipart/report")
    assert _mdn(pyas2lib_module, response, message) == ("processed", None)


def test_resend_with_the_same_message_id_gets_the_original_mdn_and_is_not_processed_again(
    any_as2_server: LiveServer, any_as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    response, message = _send(
        pyas2lib_module,
        any_as2_app,
        any_as2_server,
        sign=True,
        encrypt=True,
        enc_alg="aes_256_cbc",
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    again = httpx.post(
        f"{any_as2_server.url}/as2", content=message.content, headers=message.headers, timeout=30
    )
    assert again.content == response.content
    assert _mdn(pyas2lib_module, again, message) == ("processed", None)
    assert len(_messages(any_as2_app)) == 1
    with any_as2_app.app.state.db.unit_of_work(read_only=True) as session:
        statuses = sorted(session.scalars(select(As2Exchange.status)))
    assert statuses == ["duplicate", "processed"]


def test_async_mdn_is_posted_to_the_receipt_delivery_url_and_verifies(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    from tests.conftest_pipeline import RecordingServer, wait_until

    receiver = RecordingServer().start()
    try:
        pyas2 = pyas2lib_module
        message = pyas2.Message(
            partner_org(pyas2, as2_app.certs, mdn_url=receiver.url),
            our_station(
                pyas2,
                as2_app.certs,
                sign=True,
                encrypt=True,
                enc_alg="aes_256_cbc",
                mdn_mode="ASYNC",
                mdn_digest_alg="sha256",
            ),
        )
        message.build(X12, filename="po.edi", content_type="application/EDI-X12")
        response = httpx.post(f"{as2_server.url}/as2", content=message.content, headers=message.headers)
        assert response.status_code == 200 and response.content == b""
        wait_until(lambda: receiver.requests, timeout=10, message="the async MDN")
        posted = receiver.requests[0]
        raw = "".join(f"{k}: {v}\r\n" for k, v in posted.headers.items()).encode() + b"\r\n" + posted.body
        status, detail = pyas2.Mdn().parse(raw, find_message_cb=lambda mid, rcpt: message)
        assert (status, detail) == ("processed", None)
    finally:
        receiver.stop()


# --- negatives ---------------------------------------------------------------------------------------


def test_message_signed_with_an_unconfigured_certificate_gets_authentication_failed(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    pyas2 = pyas2lib_module
    from tests.conftest_as2 import PARTNER_AS2_ID, cert_pem, key_pem

    stranger = key_pem(as2_app.certs.stranger) + cert_pem(as2_app.certs.stranger)
    org = pyas2.Organization(as2_name=PARTNER_AS2_ID, sign_key=stranger, decrypt_key=stranger)
    message = pyas2.Message(
        org,
        our_station(pyas2, as2_app.certs, sign=True, encrypt=True, enc_alg="aes_256_cbc", mdn_mode="SYNC"),
    )
    message.build(X12, filename="po.edi")
    response = httpx.post(f"{as2_server.url}/as2", content=message.content, headers=message.headers)
    assert b"authentication-failed" in response.content
    assert _messages(as2_app) == []


def test_message_encrypted_for_someone_else_gets_decryption_failed(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    from tests.conftest_as2 import cert_pem

    response, _ = _send(
        pyas2lib_module,
        as2_app,
        as2_server,
        sign=True,
        encrypt=True,
        enc_alg="aes_256_cbc",
        encrypt_cert=cert_pem(as2_app.certs.stranger),
        mdn_mode="SYNC",
    )
    assert b"decryption-failed" in response.content
    assert _messages(as2_app) == []


def test_tampered_and_truncated_bodies_are_refused_and_nothing_is_processed(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    pyas2 = pyas2lib_module
    message = pyas2.Message(
        partner_org(pyas2, as2_app.certs),
        our_station(pyas2, as2_app.certs, sign=True, encrypt=False, mdn_mode="SYNC"),
    )
    message.build(X12, filename="po.edi")
    tampered = message.content.replace(b"PO-1", b"PO-2")
    response = httpx.post(f"{as2_server.url}/as2", content=tampered, headers=message.headers)
    assert b"integrity-check-failed" in response.content or b"authentication-failed" in response.content
    encrypted = pyas2.Message(
        partner_org(pyas2, as2_app.certs),
        our_station(pyas2, as2_app.certs, encrypt=True, enc_alg="aes_256_cbc", mdn_mode="SYNC"),
    )
    encrypted.build(X12, filename="po.edi")
    response = httpx.post(f"{as2_server.url}/as2", content=encrypted.content[:200], headers=encrypted.headers)
    assert b"decryption-failed" in response.content
    assert _messages(as2_app) == []
    with as2_app.app.state.db.unit_of_work(read_only=True) as session:
        assert (
            session.scalar(
                select(func.count()).select_from(As2Exchange).where(As2Exchange.status == "failed")
            )
            == 2
        )


def test_unknown_as2_from_gets_an_unsigned_error_mdn(
    as2_server: LiveServer, as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    response, _ = _send(
        pyas2lib_module,
        as2_app,
        as2_server,
        sign=True,
        encrypt=True,
        enc_alg="aes_256_cbc",
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    headers = dict(response.request.headers)
    headers["as2-from"] = "NOBODY"
    again = httpx.post(f"{as2_server.url}/as2", content=response.request.content, headers=headers)
    assert again.headers["content-type"].startswith("multipart/report")
    assert b"unknown-trading-partner" in again.content


def test_body_over_the_limit_is_refused_with_413_and_nothing_is_stored(
    as2_app: As2Setup, pyas2lib_module: ModuleType
) -> None:
    from tests.conftest_api import serve_in_thread, stop_server

    as2_app.app.state.settings = as2_app.app.state.settings.model_copy(update={"max_body_bytes": 1000})
    live = serve_in_thread(as2_app.app)
    try:
        response, _ = _send(pyas2lib_module, as2_app, live, X12 * 20, sign=True, mdn_mode="SYNC")
        assert response.status_code == 413
    finally:
        stop_server(live)
    assert _messages(as2_app) == []
