"""HTTP/1.1 on one kept-alive socket: a request written in one send, its response read whole.

What :class:`http.client.HTTPConnection` does for our POSTs, without its objects per request
and its e-mail header parser: under the outbound benchmark ``http.client`` was about two
thirds of a send's CPU. It reads what a server may answer (interim 1xx answers, a body by
``content-length``, chunked or up to the close, none for HEAD/204/304) and tells whether the
connection can be used again; it sends no ``Expect`` and follows nothing.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping

_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 100
_READ_SIZE = 64 * 1024
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # what a partner or ERP answers is a receipt, not a download
# Linux only. A server that writes headers and body in two sends with Nagle on holds the body
# until its headers are ACKed, and a delayed ACK takes ~40 ms: we ACK at once instead.
_QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)
_BAD_NAME_CHARS = frozenset(":\r\n\t ")


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as we read it, or a request header is malformed."""


class ClosedBeforeAnswer(ConnectionResetError):
    """The server closed the connection before the first byte of an answer."""


class Http1Connection:
    """One connection to (host, port), plain or TLS; ``sock`` is None until ``connect``."""

    def __init__(
        self, host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None,
        default_port: int = 80, max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.max_answer_bytes = max_answer_bytes
        self.sock: socket.socket | None = None
        self._context = ssl_context
        name = f"[{host}]" if ":" in host else host
        self._host_header = name if port == default_port else f"{name}:{port}"
        self._buffer = bytearray()
        self._quickack = _QUICKACK != 0

    def connect(self) -> None:
        """Open the TCP connection (and the TLS session, verifying the host name)."""
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self) -> None:
        """Close the socket (again: nothing)."""
        sock, self.sock = self.sock, None
        self._buffer.clear()
        if sock is not None:
            sock.close()

    def exchange(
        self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """Send one request, read its answer: (status, headers lower-cased, body, must close)."""
        if self.sock is None:
            raise OSError("not connected")
        self.sock.sendall(self._request(method, target, body, headers))
        while True:
            status, version, answer = self._head()
            if not 100 <= status < 200 or status == 101:
                break  # an interim answer (100 Continue, 103 Early Hints) precedes the real one
        close = _closes(version, answer.get("connection", ""))
        if method == "HEAD" or status in (101, 204, 304):
            content = b""
        elif "chunked" in answer.get("transfer-encoding", "").lower():
            content = self._chunked()
        elif "content-length" in answer:
            content = self._exactly(self._allowed(_length(answer["content-length"])))
        else:
            content, close = self._until_close(), True
        return status, answer, content, close or bool(self._buffer)

    def _request(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        if any(c <= " " or c == "\x7f" for c in target):
            raise ProtocolError(f"the request target {target!r} has a space or control character")
        lines = [f"{method} {target} HTTP/1.1"]
        names = set()
        for name, value in headers.items():
            if not name or _BAD_NAME_CHARS.intersection(name) or "\r" in value or "\n" in value:
                raise ProtocolError(f"header {name!r} is not a valid header line")
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if "host" not in names:
            lines.append(f"host: {self._host_header}")
        if "accept-encoding" not in names:
            lines.append("accept-encoding: identity")
        if body is not None and "content-length" not in names:
            lines.append(f"content-length: {len(body)}")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ProtocolError(f"a request header is not latin-1: {exc}") from exc
        return head + body if body else head

    def _fill(self) -> bool:
        """Read what has come into the buffer; False at the end of the stream."""
        assert self.sock is not None
        if self._quickack:  # the kernel leaves quick-ACK mode on its own: set it per read
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:  # not a TCP socket
                self._quickack = False
        data = self.sock.recv(_READ_SIZE)
        self._buffer += data
        return bool(data)

    def _line(self, limit: int) -> bytes | None:
        """One line without its end; None at the end of the stream."""
        start = 0
        while (end := self._buffer.find(b"\n", start)) < 0:
            if len(self._buffer) > limit:
                raise ProtocolError("an answer line is too long")
            start = len(self._buffer)
            if not self._fill():
                if self._buffer:
                    raise ProtocolError("the answer ended inside a line")
                return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line.rstrip(b"\r")

    def _head(self) -> tuple[int, str, dict[str, str]]:
        status_line = self._line(_MAX_HEAD)
        if status_line is None:
            raise ClosedBeforeAnswer("the server closed the connection without answering")
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:100]!r}")
        answer: dict[str, str] = {}
        size = 0
        for _ in range(_MAX_HEADERS + 1):
            line = self._line(_MAX_HEAD)
            if line is None:
                raise ProtocolError("the connection closed inside the answer's headers")
            if not line:
                return int(parts[1]), parts[0], answer
            size += len(line)
            if size > _MAX_HEAD:
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                raise ProtocolError(f"not a header line: {line[:100]!r}")
            key, value = name.strip().lower(), value.strip()
            answer[key] = f"{answer[key]}, {value}" if key in answer else value
        raise ProtocolError("the answer's headers are too many or too long")

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise ProtocolError(f"the answer ended after {len(self._buffer)} of {size} bytes")
        content = bytes(self._buffer[:size])
        del self._buffer[:size]
        return content

    def _allowed(self, size: int) -> int:
        """``size`` if an answer body may be that large, else ``ProtocolError``."""
        if size > self.max_answer_bytes:
            raise ProtocolError(f"the answer's body exceeds {self.max_answer_bytes} bytes")
        return size

    def _chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self._line(_MAX_HEAD)
            if line is None:
                raise ProtocolError("the connection closed inside a chunked answer")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise ProtocolError(f"not a chunk size: {line[:100]!r}") from exc
            if size == 0:
                break
            total = self._allowed(total + size)
            chunks.append(self._exactly(size))
            self._exactly(2)  # the CRLF after the chunk
        while trailer := self._line(_MAX_HEAD):
            pass  # trailers are not used
        if trailer is None:
            raise ProtocolError("the connection closed inside a chunked answer")
        return b"".join(chunks)

    def _until_close(self) -> bytes:
        self._allowed(len(self._buffer))
        while self._fill():
            self._allowed(len(self._buffer))
        content = bytes(self._buffer)
        self._buffer.clear()
        return content


def _length(value: str) -> int:
    """A ``content-length`` (repeated equal values, as some servers send, count once)."""
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not (only := values.pop()).isdigit():
        raise ProtocolError(f"not a content-length: {value!r}")
    return int(only)


def _closes(version: str, connection: str) -> bool:
    """Whether the server ends the connection after this answer."""
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" not in tokens
    return "close" in tokens
