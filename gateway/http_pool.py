"""A small keep-alive HTTP/1.1 client: a thread-safe pool of connections per origin.

httpx spent about 0.5 ms of CPU per POST here (request and response models, h11, its
transport layers); a kept-alive ``http.client`` connection did the same POST for about a
third of that, and :mod:`gateway._http1` (a request in one send, the answer read from one
buffer) for a third of ``http.client``'s. What we send to partners and ERPs is a POST with
a small body and a short answer, so this pool covers exactly that and no more:

* one idle list per origin (scheme, host, port); an idle connection the server has closed
  is noticed before use (its socket is readable) and dropped, and a request that still
  meets a closed reused connection is sent once more on a new one;
* ``timeout`` bounds the connect and every read and write; redirects are not followed;
* https verifies the certificate and host name with httpx's own default context (certifi's
  CAs, ``SSL_CERT_FILE``/``SSL_CERT_DIR``), unless given a context;
* when the environment configures a proxy for the URL's scheme (``HTTP_PROXY``,
  ``HTTPS_PROXY``, ``ALL_PROXY``), the request goes through an ``httpx.Client`` instead,
  which applies the proxy and ``NO_PROXY`` exactly as before.
"""

from __future__ import annotations

import os
import select
import ssl
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from gateway._http1 import Http1Connection, ProtocolError

DEFAULT_USER_AGENT = "edigate"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_Origin = tuple[str, str, int]


class HttpError(Exception):
    """A request failed before its whole response was read."""


class HttpConnectError(HttpError):
    """No connection could be made (refused, unresolvable, TLS handshake or certificate failed)."""


class HttpTimeout(HttpError):
    """Connecting, sending or reading took longer than the timeout."""


@dataclass(frozen=True)
class HttpResponse:
    """A whole response: status, headers (names lower-cased) and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status_code < 300


class HttpPool:
    """Keep-alive connections per origin, shared by threads; ``close`` drops the idle ones."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_idle_per_origin: int = 16,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.timeout = timeout
        self.max_idle_per_origin = max_idle_per_origin
        self._ssl_context = ssl_context
        self._user_agent = user_agent
        self._proxied_schemes = _proxied_schemes() if trust_env else frozenset()
        self._idle: dict[_Origin, list[Http1Connection]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._fallback: httpx.Client | None = None

    def post(self, url: str, *, content: bytes, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """POST ``content`` to ``url`` and read the whole answer."""
        return self.request("POST", url, content=content, headers=headers)

    def request(
        self, method: str, url: str, *, content: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """Send one request and read the whole answer; ``HttpError`` when there is none."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise HttpError(f"not an http(s) URL: {url!r}")
        if scheme in self._proxied_schemes:
            return self._through_httpx(method, url, content, headers)
        try:
            origin = (scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme])
        except ValueError as exc:  # a port that is not a number
            raise HttpError(f"bad URL {url!r}: {exc}") from exc
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"user-agent": self._user_agent, **(headers or {})}
        body = content if content or method not in ("GET", "HEAD", "DELETE") else None
        idle = True
        while True:
            connection, reused = self._checkout(origin, idle=idle)
            try:
                return self._exchange(origin, connection, method, target, body, sent)
            except _ClosedByServer as exc:
                if not reused:
                    cause = exc.__cause__
                    raise HttpError(f"{method} {url}: closed before answering ({cause})") from cause
            idle = False  # the server closed the idle connection meanwhile: once more on a new one

    def close(self) -> None:
        """Close every idle connection (and the proxy client); the pool can still be used."""
        with self._lock:
            idle, self._idle = self._idle, {}
            fallback, self._fallback = self._fallback, None
        for connections in idle.values():
            for connection in connections:
                connection.close()
        if fallback is not None:
            fallback.close()

    def _exchange(
        self,
        origin: _Origin,
        connection: Http1Connection,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> HttpResponse:
        try:
            status, answer, content, close = connection.exchange(method, target, body, headers)
        except TimeoutError as exc:
            connection.close()
            raise HttpTimeout(f"{method} {target}: no answer within {self.timeout} s") from exc
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            # ClosedBeforeAnswer is a ConnectionResetError: closed before any answer came.
            connection.close()
            raise _ClosedByServer() from exc
        except (OSError, ProtocolError) as exc:
            connection.close()
            raise HttpError(f"{method} {target}: {exc}") from exc
        if close:
            connection.close()
        else:
            self._checkin(origin, connection)
        return HttpResponse(status, answer, content)

    def _checkout(self, origin: _Origin, *, idle: bool = True) -> tuple[Http1Connection, bool]:
        """An idle connection to ``origin`` the server has not closed (True), else a new one (False)."""
        while idle:
            with self._lock:
                if self._pid != os.getpid():  # a forked child must not share its parent's sockets
                    self._idle, self._pid = {}, os.getpid()
                connections = self._idle.get(origin)
                connection = connections.pop() if connections else None
            if connection is None:
                break
            if _still_open(connection):
                return connection, True
            connection.close()
        scheme, host, port = origin
        tls = self._tls() if scheme == "https" else None
        connection = Http1Connection(
            host, port, timeout=self.timeout, ssl_context=tls, default_port=_DEFAULT_PORTS[scheme]
        )
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise HttpTimeout(f"connecting to {host}:{port}: timed out after {self.timeout} s") from exc
        except OSError as exc:  # refused, unresolvable, TLS handshake or certificate (ssl.SSLError)
            connection.close()
            raise HttpConnectError(f"connecting to {host}:{port}: {exc}") from exc
        return connection, False

    def _checkin(self, origin: _Origin, connection: Http1Connection) -> None:
        with self._lock:
            connections = self._idle.setdefault(origin, [])
            if len(connections) < self.max_idle_per_origin and self._pid == os.getpid():
                connections.append(connection)
                return
        connection.close()

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    def _through_httpx(
        self, method: str, url: str, content: bytes, headers: Mapping[str, str] | None
    ) -> HttpResponse:
        with self._lock:
            if self._fallback is None:
                self._fallback = httpx.Client(
                    timeout=self.timeout, follow_redirects=False, verify=self._tls(), trust_env=True
                )
            client = self._fallback
        sent = {"user-agent": self._user_agent, **(headers or {})}
        try:
            response = client.request(method, url, content=content, headers=sent)
        except httpx.TimeoutException as exc:
            raise HttpTimeout(f"{method} {url}: {exc}") from exc
        except httpx.ConnectError as exc:
            raise HttpConnectError(f"{method} {url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise HttpError(f"{method} {url}: {exc}") from exc
        return HttpResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                            response.content)


class _ClosedByServer(Exception):
    """The connection was reset or closed before an answer: retried once when it was a reused one."""


def _still_open(connection: Http1Connection) -> bool:
    """An idle keep-alive socket has nothing to read; readable means the server closed it.

    A TLS socket may be readable for a record that is no data (a TLS 1.3 session ticket): a
    non-blocking read tells, raising ``SSLWantReadError`` when nothing but such records came.
    """
    sock = connection.sock
    if sock is None:
        return False
    try:
        poller = select.poll()  # not select(): a descriptor past 1024 would not fit its set
        poller.register(sock, select.POLLIN | select.POLLPRI)
        if not poller.poll(0):
            return True
        if not isinstance(sock, ssl.SSLSocket):
            return False
        timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            sock.recv(1)  # data or EOF: either way not a connection to send on
        except ssl.SSLWantReadError:
            sock.settimeout(timeout)
            return True
    except (OSError, ValueError):
        pass
    return False


def _proxied_schemes() -> frozenset[str]:
    """The schemes the environment proxies, read as httpx reads it (``urllib.request.getproxies``)."""
    proxies = urllib.request.getproxies()
    if "*" in (host.strip() for host in proxies.get("no", "").split(",")):
        return frozenset()
    if proxies.get("all"):
        return frozenset(_DEFAULT_PORTS)
    return frozenset(scheme for scheme in _DEFAULT_PORTS if proxies.get(scheme))
