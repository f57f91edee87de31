"""AS2 end to end on a real stack: pyas2lib (the partner) sends a signed+encrypted 850 to our /as2,
the ERP gets the signed purchase_order webhook, and our 997 goes back over AS2 to a pyas2lib
server whose signed MDN we verify and archive.

Runs on the embedded default (SQLite + kombu's SQLAlchemy broker) and on PostgreSQL + Redis,
with uvicorn serving the API in this process and a real ``celery worker`` child process.
"""

from __future__ import annotations

import base64
import email
import email.message
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.archive.blob_store import BlobStore
from gateway.store.enums import Direction, MessageStatus, Transport
from gateway.store.models import Message
from gateway.transports.as2.models import As2Exchange
from tests.conftest_as2 import (
    OUR_AS2_ID,
    PARTNER_AS2_ID,
    As2Certs,
    cert_pem,
    our_station,
    partner_org,
    response_bytes,
)
from tests.conftest_pipeline import Recorded, Stack, pipeline_profile, wait_until

pytestmark = pytest.mark.integration
PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()
PO_GROUP_CONTROL = "101"  # GS06 of the fixture 850 (its ISA ids already match acme-retail)


# --- the partner's AS2 server (pyas2lib), where our 997 goes ---------------------------------------


@dataclass(frozen=True)
class PartnerReceived:
    """What pyas2lib made of one message we sent."""

    status: str
    error: str | None
    payload: bytes
    signed: bool
    encrypted: bool
    headers: dict[str, str]
    mdn: bytes


@dataclass
class PartnerAs2Server:
    """pyas2lib as the partner's AS2 server: decrypts and verifies what we send, answers a signed MDN."""

    pyas2: ModuleType
    certs: As2Certs
    received: list[PartnerReceived] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> PartnerAs2Server:
        """Listen on a free 127.0.0.1 port."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                raw = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()).encode() + b"\r\n" + body
                message = outer.pyas2.Message()
                status, exc, mdn = message.parse(
                    raw,
                    find_org_cb=lambda name: partner_org(outer.pyas2, outer.certs),
                    # Unsigned or unencrypted messages from us are refused (insufficient-security).
                    find_partner_cb=lambda name: our_station(
                        outer.pyas2, outer.certs, sign=True, encrypt=True
                    ),
                )
                payload = message.payload.get_payload(decode=True) if message.payload else b""
                record = PartnerReceived(
                    str(status),
                    repr(exc[0]) if exc[0] is not None else None,
                    payload or b"",
                    bool(message.signed),
                    bool(message.encrypted),
                    {k.lower(): v for k, v in self.headers.items()},
                    mdn.content,
                )
                with outer.lock:
                    outer.received.append(record)
                self.send_response(200)
                for name, value in mdn.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(mdn.content)))
                self.end_headers()
                self.wfile.write(mdn.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        serve = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        serve.start()
        return self

    @property
    def url(self) -> str:
        """The partner's AS2 URL."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/as2"

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def partner_as2(pyas2lib_module: ModuleType, as2_certs: As2Certs) -> Iterator[PartnerAs2Server]:
    """The partner's pyas2lib AS2 server on a free port."""
    server = PartnerAs2Server(pyas2lib_module, as2_certs).start()
    yield server
    server.stop()


# --- helpers ---------------------------------------------------------------------------------------------


def make_acme_an_as2_partner(stack: Stack, certs: As2Certs, partner_url: str) -> None:
    """Store our AS2 key pair and a new acme-retail profile version with an AS2 section.

    The HTTP endpoint stays configured: an acknowledgment that wrongly left over HTTP would
    show up at ``stack.partner_http``.
    """
    from gateway.secrets import SecretBox
    from gateway.transports.as2.certificates import add_key_pair
    from gateway.transports.as2.partners import forget_index
    from partner_profiles.service import save_profile, validate_profile_data

    box = SecretBox.from_settings(stack.settings)
    as2 = {
        "as2_id": PARTNER_AS2_ID,
        "url": partner_url,
        "partner_cert": cert_pem(certs.partner).decode(),
        "sign": "sha256",
        "encrypt": "aes256-cbc",
        "compress": False,
        "mdn": {"mode": "sync", "signed": True},
    }
    profile = pipeline_profile(stack.partner_http.url)
    profile["transports"] = {**profile["transports"], "as2": as2}
    with stack.db.unit_of_work() as session:
        add_key_pair(
            session,
            name="our AS2 key",
            as2_id=OUR_AS2_ID,
            key=certs.ours.key,
            cert=certs.ours.cert,
            box=box,
            actor="test",
            activate=True,
        )
        save_profile(session, validate_profile_data(profile), box=box, actor="test")
    forget_index()  # the in-process API's AS2-name cache


def verify_standard_webhook(secret: str, hook: Recorded, *, tolerance: int = 300) -> None:
    """Check the Standard Webhooks signature as an ERP would, independently of the gateway's code."""
    webhook_id, timestamp = hook.headers["webhook-id"], hook.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) <= tolerance
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + hook.body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert any(hmac.compare_digest(expected, sig) for sig in hook.headers["webhook-signature"].split())


def segments(x12: bytes) -> list[list[str]]:
    """The X12 segments (element separator ISA[3], terminator ISA[105]) as lists of elements."""
    text = x12.decode("ascii").strip()
    element, terminator = text[3], text[105]
    return [s.strip().split(element) for s in text.split(terminator) if s.strip()]


def kind(x12: bytes) -> str:
    """``TA1`` for an interchange acknowledgment, else the first transaction set's id."""
    found = segments(x12)
    return "TA1" if found[1][0] == "TA1" else found[2][1]


def mdn_field(response: httpx.Response, name: str) -> str:
    """One field of the MDN's message/disposition-notification part."""
    for part in email.message_from_bytes(response_bytes(response)).walk():
        if part.get_content_type() == "message/disposition-notification":
            fields = part.get_payload()  # the per-message fields block, then the per-recipient one
            assert isinstance(fields, list) and isinstance(fields[-1], email.message.Message)
            return str(fields[-1].get(name, "")).strip()
    return ""


def outbound_acks(stack: Stack) -> list[Message]:
    """Our outbound messages (the acknowledgments), newest last."""
    with stack.db.sessions() as session:
        return list(
            session.scalars(
                select(Message).where(Message.direction == Direction.OUTBOUND).order_by(Message.received_at)
            )
        )


# --- the test ---------------------------------------------------------------------------------------------


def test_as2_850_reaches_the_erp_and_its_997_goes_back_over_as2_with_a_verified_mdn(
    stack: Stack, partner_as2: PartnerAs2Server, as2_certs: As2Certs, pyas2lib_module: ModuleType
) -> None:
    pyas2 = pyas2lib_module
    make_acme_an_as2_partner(stack, as2_certs, partner_as2.url)

    # 1. The partner sends the 850 signed (SHA-256) and encrypted (AES-256-CBC), asking a signed sync MDN.
    station = our_station(
        pyas2,
        as2_certs,
        sign=True,
        digest_alg="sha256",
        encrypt=True,
        enc_alg="aes_256_cbc",
        mdn_mode="SYNC",
        mdn_digest_alg="sha256",
    )
    sent = pyas2.Message(partner_org(pyas2, as2_certs), station)
    sent.build(PO, filename="po_850.x12", content_type="application/EDI-X12")
    response = httpx.post(f"{stack.api_url}/as2", content=sent.content, headers=sent.headers, timeout=30)

    # 2. Our sync MDN: signed, processed, and its MIC is the one pyas2lib computed (its own parser checks).
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/signed")
    status, detail = pyas2.Mdn().parse(response_bytes(response), find_message_cb=lambda mid, rcpt: sent)
    assert (status, detail) == ("processed", None)
    assert mdn_field(response, "Received-Content-MIC") == f"{sent.mic.decode()}, sha-256"
    assert mdn_field(response, "Original-Message-ID") == f"<{sent.message_id}>"

    # 3. The ERP gets the purchase_order, signed per Standard Webhooks.
    wait_until(lambda: stack.erp.requests, timeout=30, message=lambda: f"the ERP webhook\n{stack.logs()}")
    hook = stack.erp.requests[0]
    verify_standard_webhook(stack.webhook_secret, hook)
    event = hook.json()
    assert event["type"] == "document.received"
    assert (event["partner_id"], event["document_type"]) == ("acme-retail", "purchase_order")
    assert event["data"]["po_number"] == "PO-10001"
    with stack.db.sessions() as session:
        inbound = session.get(Message, uuid.UUID(event["message_id"]))
        assert inbound is not None
        assert (inbound.transport, inbound.direction) == (Transport.AS2, Direction.INBOUND)
        assert inbound.transport_message_id == f"<{sent.message_id}>"
        exchange_in = session.scalars(
            select(As2Exchange).where(
                As2Exchange.direction == "inbound", As2Exchange.message_id == inbound.id
            )
        ).one()
        assert (exchange_in.status, exchange_in.disposition) == ("processed", "processed")
        assert exchange_in.raw_sha256 is not None and exchange_in.mdn_sha256 is not None  # archived

    # 4. Our acks reach the partner over AS2: the 997, and a TA1 (the 850's ISA14 asks for one).
    #    pyas2lib decrypted each one and verified our signature.
    def delivered_997() -> PartnerReceived | None:
        with partner_as2.lock:
            return next((r for r in partner_as2.received if b"ST*997*" in r.payload), None)

    ack = wait_until(delivered_997, timeout=30, message=lambda: f"the 997 over AS2\n{stack.logs()}")
    ack_segments = segments(ack.payload)
    assert ack_segments[2][:2] == ["ST", "997"]
    assert ["AK1", "PO", PO_GROUP_CONTROL] in ack_segments
    assert next(s for s in ack_segments if s[0] == "AK9")[1] == "A"

    # 5. We verified each partner MDN: every ack is sent, and its receipt is that MDN, archived.
    def all_acks_sent() -> list[Message] | None:
        acks = outbound_acks(stack)
        done = acks and all(m.status is MessageStatus.SENT for m in acks)
        return acks if done and len(partner_as2.received) >= len(acks) else None

    acks = wait_until(all_acks_sent, timeout=15, message=lambda: f"the acks sent\n{stack.logs()}")
    with partner_as2.lock:
        received = {r.headers["message-id"]: r for r in partner_as2.received}
    assert len(received) == len(partner_as2.received) == len(acks) == 2  # each sent once
    assert {kind(r.payload) for r in received.values()} == {"997", "TA1"}
    assert stack.partner_http.requests == []  # nothing went out over plain HTTP
    blobs = BlobStore(stack.settings.archive_dir())
    for message in acks:
        assert message.transport is Transport.AS2
        assert message.transport_message_id in received
        at_partner = received[message.transport_message_id]
        assert (at_partner.status, at_partner.error) == ("processed", None)
        assert at_partner.signed and at_partner.encrypted
        assert at_partner.headers["as2-from"].strip('"') == OUR_AS2_ID
        assert at_partner.headers["as2-to"].strip('"') == PARTNER_AS2_ID
        assert message.receipt_sha256 is not None
        with blobs.open(message.receipt_sha256) as handle:
            assert handle.read().endswith(at_partner.mdn)
        with stack.db.sessions() as session:
            exchange = session.scalars(
                select(As2Exchange).where(
                    As2Exchange.direction == "outbound", As2Exchange.message_id == message.id
                )
            ).one()
            assert exchange.as2_message_id == message.transport_message_id
            assert (exchange.status, exchange.disposition, exchange.mdn_status) == (
                "delivered",
                "processed",
                "received",
            )
