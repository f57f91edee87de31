"""POST /as2 over real HTTP: ``Expect: 100-continue`` (BizTalk) and how many messages one process
works on at once."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from gateway.transports.as2 import views
from gateway.transports.as2.building import BuildOptions, BuiltMessage, build_message
from gateway.transports.as2.mdn import parse_mdn
from gateway.transports.as2.receiving import As2Answer, receive_as2
from tests.conftest_api import LiveServer
from tests.conftest_as2 import OUR_AS2_ID, PARTNER_AS2_ID, As2Setup

pytestmark = pytest.mark.integration

X12 = b"ISA*00*          *00~GS*PO~ST*850*0001~SE*2*0001~GE*1*1~IEA*1*000000001~"


def _built(setup: As2Setup) -> BuiltMessage:
    return build_message(
        X12,
        content_type="application/EDI-X12",
        filename="po.edi",
        as2_from=PARTNER_AS2_ID,
        as2_to=OUR_AS2_ID,
        message_id=f"<{uuid.uuid4().hex}@{PARTNER_AS2_ID}>",
        options=BuildOptions(sign="sha256", encrypt="aes256-cbc"),
        signer=setup.certs.partner,
        recipients=[setup.certs.ours.cert],
    )


def _read_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers (lower-cased) and the Content-Length body of one response."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return lines[0], headers, body


def test_a_sender_waiting_for_100_continue_gets_it_before_sending_the_body_then_its_mdn(
    as2_server: LiveServer, as2_app: As2Setup
) -> None:
    built = _built(as2_app)
    port = int(as2_server.url.rsplit(":", 1)[1])
    head = ["POST /as2 HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(built.body)}"]
    head += ["Expect: 100-continue", *(f"{k}: {v}" for k, v in built.headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)  # byte by byte: nothing of the final answer may be read here
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(built.body)
        status, headers, body = _read_response(sock)
    assert status.startswith("HTTP/1.1 200")
    mdn = parse_mdn(headers["content-type"], body, partner_certs=[as2_app.certs.ours.cert])
    assert mdn.signed and str(mdn.disposition) == "processed" and mdn.mic is not None


def test_one_process_works_on_at_most_receive_threads_messages_at_once(
    as2_server: LiveServer, as2_app: As2Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = threading.Lock()
    running: list[int] = []
    peak: list[int] = [0]

    def counting(*args: Any, **kwargs: Any) -> As2Answer:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        try:
            time.sleep(0.2)  # long enough for every request to be waiting at once
            return receive_as2(*args, **kwargs)
        finally:
            with lock:
                running.pop()

    monkeypatch.setattr("gateway.transports.as2.views.receive_as2", counting)
    messages = [_built(as2_app) for _ in range(3 * views.RECEIVE_THREADS)]
    answers: list[int] = []

    def send(message: BuiltMessage) -> None:
        response = httpx.post(
            f"{as2_server.url}/as2", content=message.body, headers=message.headers, timeout=30
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=send, args=(message,)) for message in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * len(messages)
    assert peak[0] == views.RECEIVE_THREADS
