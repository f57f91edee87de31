"""``As2Transport`` sends to pyas2lib running as the partner's AS2 server (real HTTP) and
verifies its MDNs; retries follow rfc4130bis; async MDNs arrive at our /as2/mdn."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.transports import OutboundMessage, TransportError
from gateway.transports.as2.models import As2Exchange
from gateway.transports.as2.sender import As2Transport
from partner_profiles.schema import PartnerProfile
from tests.conftest_api import LiveServer
from tests.conftest_as2 import As2Setup, as2_profile, cert_pem, partner_org

pytestmark = pytest.mark.integration
PAYLOAD = b"ISA*00*997 BACK~GS*FA~ST*997*0001~SE*2*0001~GE*1*1~IEA*1*000000001~\r\n"


@dataclass
class PyAs2Server:
    """pyas2lib parsing what we send, answering with its own MDN (or a forced HTTP status)."""

    pyas2: ModuleType
    setup: As2Setup
    status: int = 200
    station: dict[str, Any] = field(default_factory=dict)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> PyAs2Server:
        """Listen on a free 127.0.0.1 port."""
        outer = self
        from tests.conftest_as2 import our_station

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                outer.message_ids.append(self.headers.get("message-id", ""))
                if outer.status != 200:
                    self.send_response(outer.status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                raw = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items()).encode() + b"\r\n" + body
                message = outer.pyas2.Message()
                status, _exc, mdn = message.parse(
                    raw,
                    find_org_cb=lambda name: partner_org(outer.pyas2, outer.setup.certs),
                    find_partner_cb=lambda name: our_station(outer.pyas2, outer.setup.certs, **outer.station),
                )
                outer.received.append(
                    (str(status), message.payload.get_payload(decode=True) if message.payload else b"")
                )
                self.send_response(200)
                for name, value in mdn.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(mdn.content)))
                self.end_headers()
                self.wfile.write(mdn.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        """Where to POST."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/as2"

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def pyas2_server(as2_app: As2Setup, pyas2lib_module: ModuleType) -> Iterator[PyAs2Server]:
    """A pyas2lib AS2 server for partner ACMEAS2."""
    server = PyAs2Server(pyas2lib_module, as2_app).start()
    yield server
    server.stop()


def _transport(setup: As2Setup) -> As2Transport:
    return As2Transport(
        settings=setup.app.state.settings, database=setup.app.state.db, client=httpx.Client(timeout=30)
    )


def _profile(setup: As2Setup, url: str, **as2: Any) -> PartnerProfile:
    return PartnerProfile.model_validate(as2_profile(url, setup.certs.partner, **as2))


def _outbound(setup: As2Setup) -> OutboundMessage:
    """An outbound message row the transport can record against."""
    from gateway.store.enums import Direction, MessageStatus, Transport
    from gateway.store.models import Message

    blob = setup.app.state.blobs.put_bytes(PAYLOAD)
    message_id = uuid.uuid4()
    with setup.app.state.db.unit_of_work() as session:
        from gateway.store.blobs import record_blob

        record_blob(session, blob)
        session.add(
            Message(
                id=message_id,
                direction=Direction.OUTBOUND,
                transport=Transport.AS2,
                partner_id=setup.partner_id,
                status=MessageStatus.QUEUED,
                content_sha256=blob.sha256,
                size=blob.size,
                content_type="application/EDI-X12",
                filename="fa_997.edi",
                correlation_id=uuid.uuid4().hex,
            )
        )
    return OutboundMessage(str(message_id), setup.partner_id, "application/EDI-X12", "fa_997.edi")


@pytest.mark.parametrize(
    "as2",
    [
        pytest.param({}, id="sha256-aes256"),
        pytest.param({"compress": True}, id="compressed"),
        pytest.param({"sign": "sha512", "encrypt": "aes128-cbc"}, id="sha512-aes128"),
        pytest.param({"encrypt": "none"}, id="signed-only"),
        pytest.param(
            {"sign": "none", "mdn": {"mode": "sync", "signed": False}}, id="encrypted-only-unsigned-mdn"
        ),
    ],
)
def test_pyas2lib_receives_what_we_send_and_its_mdn_verifies(
    as2_app: As2Setup, pyas2_server: PyAs2Server, as2: dict[str, Any]
) -> None:
    message = _outbound(as2_app)
    receipt = _transport(as2_app).send(message, PAYLOAD, _profile(as2_app, pyas2_server.url, **as2))
    assert pyas2_server.received == [("processed", PAYLOAD)]
    assert receipt.remote_id == f"<{message.message_id}@DISTCOAS2>"
    assert receipt.headers["as2-disposition"] == "processed"
    assert receipt.body  # the raw MDN, archived by the sending service
    with as2_app.app.state.db.sessions() as session:
        exchange = session.scalars(select(As2Exchange)).one()
        assert (exchange.direction, exchange.status) == ("outbound", "delivered")


@pytest.mark.parametrize(
    ("status", "retryable"), [(503, True), (408, True), (425, True), (400, False), (403, False), (404, False)]
)
def test_http_failures_are_retryable_only_where_rfc4130bis_says_so(
    as2_app: As2Setup, pyas2_server: PyAs2Server, status: int, retryable: bool
) -> None:
    pyas2_server.status = status
    message = _outbound(as2_app)
    with pytest.raises(TransportError) as failure:
        _transport(as2_app).send(message, PAYLOAD, _profile(as2_app, pyas2_server.url))
    assert failure.value.retryable is retryable


def test_a_retry_uses_the_same_message_id(as2_app: As2Setup, pyas2_server: PyAs2Server) -> None:
    message = _outbound(as2_app)
    transport = _transport(as2_app)
    pyas2_server.status = 503
    with pytest.raises(TransportError):
        transport.send(message, PAYLOAD, _profile(as2_app, pyas2_server.url))
    pyas2_server.status = 200
    transport.send(message, PAYLOAD, _profile(as2_app, pyas2_server.url))
    assert len(set(pyas2_server.message_ids)) == 1


def test_a_signed_failure_mdn_is_not_retried(as2_app: As2Setup, pyas2_server: PyAs2Server) -> None:
    # The partner holds a stranger's certificate for us: it answers authentication-failed, signed.
    pyas2_server.station = {"verify_cert": cert_pem(as2_app.certs.stranger)}
    with pytest.raises(TransportError) as failure:
        _transport(as2_app).send(_outbound(as2_app), PAYLOAD, _profile(as2_app, pyas2_server.url))
    assert failure.value.retryable is False
    assert "authentication-failed" in str(failure.value)


def test_async_mdn_posted_to_as2_mdn_is_matched_to_the_message_and_recorded(
    as2_app: As2Setup, as2_server: LiveServer, pyas2lib_module: ModuleType
) -> None:
    pyas2 = pyas2lib_module
    from tests.conftest_as2 import our_station

    message = _outbound(as2_app)
    captured: dict[str, Any] = {}

    def fake_partner(request: httpx.Request) -> httpx.Response:
        raw = (
            "".join(f"{k}: {v}\r\n" for k, v in request.headers.items()).encode() + b"\r\n" + request.content
        )
        parsed = pyas2.Message()
        _, _, mdn = parsed.parse(
            raw,
            find_org_cb=lambda name: partner_org(pyas2, as2_app.certs),
            find_partner_cb=lambda name: our_station(pyas2, as2_app.certs),
        )
        captured["mdn"] = mdn
        return httpx.Response(200)

    transport = As2Transport(
        settings=as2_app.app.state.settings,
        database=as2_app.app.state.db,
        client=httpx.Client(transport=httpx.MockTransport(fake_partner)),
    )
    profile = _profile(
        as2_app,
        "http://partner.example/as2",
        mdn={"mode": "async", "signed": True, "async_url": f"{as2_server.url}/as2/mdn"},
    )
    receipt = transport.send(message, PAYLOAD, profile)
    assert receipt.headers["as2-disposition"] == ""
    mdn = captured["mdn"]
    answer = httpx.post(mdn.mdn_url, content=mdn.content, headers=mdn.headers)
    assert answer.status_code == 200, answer.text
    with as2_app.app.state.db.sessions() as session:
        exchange = session.scalars(select(As2Exchange)).one()
        assert (exchange.status, exchange.mdn_status, exchange.disposition) == (
            "delivered",
            "received",
            "processed",
        )
