"""The HTTP/1.1 wire code against canned answers on a socket pair: the answer shapes a server
may send (chunked, to the close, interim 1xx, no body) and the requests it refuses to write."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from gateway._http1 import ClosedBeforeAnswer, Http1Connection, ProtocolError


@pytest.fixture
def pair() -> Iterator[tuple[Http1Connection, socket.socket]]:
    """A connection whose socket is one end of a pair; the test writes the server's answer."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    connection = Http1Connection("example.test", 8080, timeout=5)
    connection.sock = ours
    yield connection, theirs
    connection.close()
    theirs.close()


def _answer(theirs: socket.socket, raw: bytes, *, close: bool = False) -> threading.Thread:
    def serve() -> None:
        theirs.recv(65536)
        theirs.sendall(raw)
        if close:
            theirs.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_the_request_is_one_write_with_host_length_and_the_callers_headers(
    pair: tuple[Http1Connection, socket.socket],
) -> None:
    connection, theirs = pair
    sent: list[bytes] = []

    def serve() -> None:
        sent.append(theirs.recv(65536))
        theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Message-Id: m1\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    status, headers, body, close = connection.exchange("POST", "/edi?a=1", b"ISA*", {"content-type": "x"})
    thread.join()
    assert (status, headers["x-message-id"], body, close) == (200, "m1", b"ok", False)
    head, _, payload = sent[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /edi?a=1 HTTP/1.1" and payload == b"ISA*"
    assert {"content-type: x", "host: example.test:8080", "content-length: 4"} <= set(lines)


def test_a_chunked_answer_after_an_interim_one_is_read_whole(
    pair: tuple[Http1Connection, socket.socket],
) -> None:
    connection, theirs = pair
    _answer(theirs, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n"
                    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n")
    status, headers, body, close = connection.exchange("POST", "/", b"x", {})
    assert (status, body, close) == (202, b"abcde", False)
    assert headers["set-cookie"] == "a=1, b=2"


def test_an_answer_without_length_is_read_to_the_close_and_the_connection_not_reused(
    pair: tuple[Http1Connection, socket.socket],
) -> None:
    connection, theirs = pair
    _answer(theirs, b"HTTP/1.0 200 OK\r\n\r\nall of it", close=True)
    assert connection.exchange("POST", "/", b"x", {})[2:] == (b"all of it", True)


@pytest.mark.parametrize(
    ("raw", "closes"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.0 204 No Content\r\n\r\n", True),
        (b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n", False),
        (b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", True),
    ],
)
def test_a_bodyless_answer_and_who_closes(
    pair: tuple[Http1Connection, socket.socket], raw: bytes, closes: bool
) -> None:
    connection, theirs = pair
    _answer(theirs, raw)
    assert connection.exchange("POST", "/", b"x", {})[2:] == (b"", closes)


def test_a_close_before_any_answer_and_a_garbled_answer_are_told_apart(
    pair: tuple[Http1Connection, socket.socket],
) -> None:
    connection, theirs = pair
    _answer(theirs, b"", close=True)
    with pytest.raises(ClosedBeforeAnswer):
        connection.exchange("POST", "/", b"x", {})
    ours, other = socket.socketpair()
    garbled = Http1Connection("example.test", 80, timeout=5)
    garbled.sock = ours
    _answer(other, b"SMTP ready\r\n\r\n")
    with pytest.raises(ProtocolError):
        garbled.exchange("POST", "/", b"x", {})
    garbled.close()
    other.close()


def test_a_short_body_is_an_error(pair: tuple[Http1Connection, socket.socket]) -> None:
    connection, theirs = pair
    _answer(theirs, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", close=True)
    with pytest.raises(ProtocolError, match="5 of 10"):
        connection.exchange("POST", "/", b"x", {})


@pytest.mark.parametrize(
    ("target", "headers"),
    [("/a b", {}), ("/", {"x-evil": "1\r\nx-injected: 2"}), ("/", {"bad name": "1"}), ("/", {"x": "é€"})],
)
def test_a_request_line_or_header_that_would_split_the_request_is_refused(
    pair: tuple[Http1Connection, socket.socket], target: str, headers: dict[str, str]
) -> None:
    with pytest.raises(ProtocolError):
        pair[0].exchange("POST", target, b"x", headers)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + b"x" * 101,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n40\r\n"
        + b"x" * 64 + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 200,  # read to the close
    ],
    ids=["content-length", "chunked", "to-the-close"],
)
def test_an_answer_body_over_the_limit_is_refused(
    pair: tuple[Http1Connection, socket.socket], raw: bytes
) -> None:
    connection, theirs = pair
    connection.max_answer_bytes = 100
    _answer(theirs, raw, close=True)
    with pytest.raises(ProtocolError, match="exceeds 100 bytes"):
        connection.exchange("POST", "/", b"x", {})
