"""The keep-alive HTTP pool against real servers on 127.0.0.1: reuse, servers that close idle
connections, timeouts, status codes, TLS with a self-signed certificate, proxies, threads."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import http_pool
from gateway.http_pool import HttpConnectError, HttpError, HttpPool, HttpTimeout
from gateway.transports import OutboundMessage, TransportError
from gateway.transports.http import HttpTransport
from partner_profiles.schema import PartnerProfile
from partner_profiles.service import validate_profile_data
from tests.conftest_outbound import outbound_profile

pytestmark = pytest.mark.integration

Answer = Callable[[BaseHTTPRequestHandler, bytes], None]


class Peer:
    """A threaded HTTP/1.1 server whose answer a test chooses; counts connections and requests
    (header names lower-cased)."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None, *, nagle: bool = False) -> None:
        peer = self
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = not nagle

            def setup(self) -> None:
                with peer.lock:
                    peer.connections += 1
                super().setup()

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with peer.lock:
                    peer.requests.append((self.command, self.path, headers, body))
                peer.answer(self, body)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()


def reply(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None,
          close_after: bool = False) -> Answer:
    """An answer with this status, body and headers; ``close_after``: then close without saying so."""

    def answer(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        if close_after:
            handler.close_connection = True

    return answer


@pytest.fixture
def serve() -> Iterator[Callable[..., Peer]]:
    """Start peers for one test; all are stopped after it."""
    started: list[Peer] = []

    def start(answer: Answer, tls: ssl.SSLContext | None = None) -> Peer:
        started.append(Peer(answer, tls))
        return started[-1]

    yield start
    for peer in started:
        peer.stop()


def test_requests_to_one_origin_reuse_one_kept_alive_connection(serve: Callable[..., Peer]) -> None:
    peer = serve(reply(body=b"receipt", headers={"X-Message-Id": "r-1"}))
    pool = HttpPool(timeout=5)
    answers = [pool.post(f"{peer.url}/edi?x=1", content=b"ISA*%d" % n, headers={"X-Test": "yes"})
               for n in range(5)]
    assert [a.status_code for a in answers] == [200] * 5 and all(a.is_success for a in answers)
    assert answers[0].content == b"receipt" and answers[0].headers["x-message-id"] == "r-1"
    assert peer.connections == 1
    method, path, headers, body = peer.requests[2]
    assert (method, path, body) == ("POST", "/edi?x=1", b"ISA*2")
    assert headers["x-test"] == "yes" and headers["content-length"] == "5"
    assert headers["user-agent"] == "edigate" and headers["host"] == f"127.0.0.1:{peer.port}"
    pool.close()


def test_a_server_closing_idle_connections_costs_a_new_connection_not_a_failure(
    serve: Callable[..., Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = serve(reply(close_after=True))  # closes after each answer without "connection: close"
    pool = HttpPool(timeout=5)
    sends = []
    exchange = pool._exchange
    monkeypatch.setattr(pool, "_exchange", lambda *args: sends.append(1) or exchange(*args))
    for _ in range(3):
        assert pool.post(peer.url, content=b"x").status_code == 200
        time.sleep(0.05)  # the server's FIN arrives while the connection is idle
    assert peer.connections == 3 and len(peer.requests) == 3
    assert len(sends) == 3  # the closed connection was dropped before sending, not after failing


def test_a_reused_connection_found_closed_only_when_sending_is_retried_once_on_a_new_one(
    serve: Callable[..., Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = serve(reply(close_after=True))
    pool = HttpPool(timeout=5)
    assert pool.post(peer.url, content=b"first").status_code == 200
    time.sleep(0.05)
    monkeypatch.setattr(http_pool, "_still_open", lambda connection: True)  # closed after the check
    assert pool.post(peer.url, content=b"second").status_code == 200
    assert peer.connections == 2 and [r[3] for r in peer.requests] == [b"first", b"second"]


def test_a_fresh_connection_closed_before_an_answer_is_an_error_and_not_sent_again(
    serve: Callable[..., Peer],
) -> None:
    def hang_up(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    peer = serve(hang_up)
    with pytest.raises(HttpError, match="closed before answering"):
        HttpPool(timeout=5).post(peer.url, content=b"x")
    assert len(peer.requests) == 1


def test_a_slow_answer_times_out_and_a_closed_port_is_a_connect_error(serve: Callable[..., Peer]) -> None:
    def slow(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        time.sleep(1.5)
        handler.close_connection = True  # the client has gone

    peer = serve(slow)
    started = time.monotonic()
    with pytest.raises(HttpTimeout):
        HttpPool(timeout=0.3).post(peer.url, content=b"x")
    assert time.monotonic() - started < 1.2
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(HttpConnectError):
        HttpPool(timeout=2).post(f"http://127.0.0.1:{port}/", content=b"x")


def test_other_statuses_come_back_as_answers_and_redirects_are_not_followed(
    serve: Callable[..., Peer],
) -> None:
    pool = HttpPool(timeout=5)
    unavailable = serve(reply(503, b"busy", {"Retry-After": "5", "Set-Cookie": "a=1"}))
    answer = pool.post(unavailable.url, content=b"x")
    assert (answer.status_code, answer.content, answer.is_success) == (503, b"busy", False)
    assert answer.headers["retry-after"] == "5"
    moved = serve(reply(302, b"", {"Location": f"{unavailable.url}/elsewhere"}))
    assert pool.post(moved.url, content=b"x").status_code == 302
    assert len(unavailable.requests) == 1  # not followed
    with pytest.raises(HttpError):
        pool.post("ftp://127.0.0.1/x", content=b"x")


def test_the_transport_turns_statuses_into_receipts_and_retryable_or_final_errors(
    serve: Callable[..., Peer],
) -> None:
    def by_path(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        status = int(handler.path.rsplit("/", 1)[1])
        reply(status, b"receipt " + body[:3], {"X-Message-Id": "remote-9", "Content-Type": "text/plain"})(
            handler, body
        )

    peer = serve(by_path)
    transport = HttpTransport(timeout=5)
    message = OutboundMessage("m-1", "acme-retail", "application/edi-x12", "855_000000001.x12")
    receipt = transport.send(message, b"ISA*...", _profile(f"{peer.url}/edi/202"))
    assert (receipt.status_code, receipt.remote_id, receipt.body) == (202, "remote-9", b"receipt ISA")
    assert receipt.headers == {"content-type": "text/plain"}
    _, _, headers, _ = peer.requests[0]
    assert headers["x-edigate-message-id"] == "m-1" and headers["content-type"] == "application/edi-x12"
    assert headers["content-disposition"] == 'attachment; filename="855_000000001.x12"'
    assert headers["x-api-key"] == "partner-secret"
    for status, retryable in ((503, True), (429, True), (400, False)):
        with pytest.raises(TransportError) as failed:
            transport.send(message, b"ISA", _profile(f"{peer.url}/edi/{status}"))
        assert (failed.value.status_code, failed.value.retryable) == (status, retryable)
    transport.close()


def _profile(url: str) -> PartnerProfile:
    data = outbound_profile(outbound_url=url)
    data["transports"]["http"]["headers"] = {"X-Api-Key": "partner-secret"}
    return validate_profile_data(data)


def test_https_verifies_the_certificate_and_reuses_the_tls_connection(
    serve: Callable[..., Peer], tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    peer = serve(reply(body=b"secure"), tls)
    trusting = HttpPool(timeout=5, ssl_context=ssl.create_default_context(cafile=str(cert)))
    for _ in range(3):
        assert trusting.post(peer.url, content=b"x").content == b"secure"
    assert peer.connections == 1
    with pytest.raises(HttpConnectError, match=r"CERTIFICATE_VERIFY_FAILED"):
        HttpPool(timeout=5).post(peer.url, content=b"x")  # certifi's CAs do not know it
    wrong_host = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(HttpConnectError, match=r"mismatch"):
        HttpPool(timeout=5, ssl_context=wrong_host).post(f"https://localhost:{peer.port}/", content=b"x")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 only (not ``localhost``) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edigate test peer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "peer.pem", folder / "peer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return cert_path, key_path


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
    serve: Callable[..., Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = serve(reply(body=b"direct"))
    proxy = serve(reply(body=b"via proxy"))
    for name in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert HttpPool(timeout=5).post(f"{target.url}/edi", content=b"x").content == b"via proxy"
    assert proxy.requests[0][1] == f"{target.url}/edi"  # the absolute URI a proxy gets
    assert HttpPool(timeout=5, trust_env=False).post(target.url, content=b"x").content == b"direct"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert HttpPool(timeout=5).post(target.url, content=b"x").content == b"direct"
    assert len(proxy.requests) == 1


def test_threads_share_the_pool_and_it_keeps_at_most_its_idle_limit(serve: Callable[..., Peer]) -> None:
    peer = serve(reply())
    pool = HttpPool(timeout=5, max_idle_per_origin=2)

    def post(n: int) -> int:
        return pool.post(peer.url, content=b"%d" % n).status_code

    with ThreadPoolExecutor(8) as threads:
        assert set(threads.map(post, range(200))) == {200}
    assert len(peer.requests) == 200 and peer.connections <= 200
    assert sum(len(idle) for idle in pool._idle.values()) <= 2
    pool.close()
    assert pool._idle == {} and pool.post(peer.url, content=b"again").status_code == 200


def test_a_server_with_nagle_on_does_not_stall_each_answer_on_our_delayed_ack() -> None:
    # http.server sends an answer's headers and body separately; with Nagle on, the body waits
    # for the ACK of the headers, which a client delaying its ACKs sends ~40 ms later.
    peer = Peer(reply(), nagle=True)
    pool = HttpPool(timeout=5)
    try:
        pool.post(f"{peer.url}/warm", content=b"x")
        started = time.monotonic()
        for _ in range(25):
            assert pool.post(f"{peer.url}/hook", content=b"x" * 300).status_code == 200
        assert time.monotonic() - started < 0.5  # ~1 s if every answer waited for a delayed ACK
        assert peer.connections == 1
    finally:
        pool.close()
        peer.stop()
