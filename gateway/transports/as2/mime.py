"""MIME on raw bytes: entities are split and hashed exactly as received, never re-serialised.

``parse_entity`` splits headers from body at the first blank line (CRLF or bare LF);
``split_multipart`` returns each part's bytes exactly between the boundary line's line end and
the line end before the next boundary (RFC 2046), which is what a signature covers.
``parse_part``/``split_parts``/``decoded_span`` do the same on spans, for bodies too large to copy.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.utils
import functools
import quopri
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Protocol

from gateway.transports.as2.spans import Span, Spool

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED_NAMES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
MAX_FILENAME = 200
MAX_HEADER_BLOCK = 64 * 1024
_WHITESPACE = re.compile(rb"\s+")


class MimeError(ValueError):
    """A MIME entity cannot be parsed."""


class Headed(Protocol):
    """Anything with MIME headers (lower-cased names)."""

    @property
    def headers(self) -> dict[str, str]:
        """The headers."""
        ...

    def param(self, name: str, header: str = "content-type") -> str | None:
        """A parameter of a header."""
        ...


class _HeaderAccess:
    """``content_type`` and ``param`` for classes with a ``headers`` dict."""

    headers: dict[str, str]

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters (``text/plain`` when absent)."""
        return media_type(self.headers.get("content-type", "text/plain"))

    def param(self, name: str, header: str = "content-type") -> str | None:
        """A parameter of a header (RFC 2231 continuations and encodings decoded)."""
        return header_param(self.headers.get(header, ""), name)

    @property
    def transfer_encoding(self) -> str | None:
        """The Content-Transfer-Encoding header, if any."""
        return self.headers.get("content-transfer-encoding")


@dataclass(frozen=True)
class Entity(_HeaderAccess):
    """A MIME entity: its exact bytes, its headers (lower-cased names) and its raw body."""

    raw: bytes
    headers: dict[str, str]
    body: bytes

    def decoded_body(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        return decode_transfer_encoding(self.body, self.transfer_encoding)


@dataclass(frozen=True)
class Part(_HeaderAccess):
    """A MIME entity whose body is a span (in memory or in a file): headers parsed, body not copied."""

    headers: dict[str, str]
    body: Span

    def decoded_body(self) -> bytes:
        """The whole body with its Content-Transfer-Encoding undone (small bodies only)."""
        return decode_transfer_encoding(self.body.read(), self.transfer_encoding)


def unfold_headers(block: bytes) -> dict[str, str]:
    """Header lines (folded continuations joined) as a dict of lower-cased names; last wins."""
    headers: dict[str, str] = {}
    name: str | None = None
    for line in re.split(rb"\r?\n", block):
        if not line:
            continue
        text = line.decode("latin-1")
        if text[0] in " \t" and name is not None:
            headers[name] += " " + text.strip()
            continue
        key, sep, value = text.partition(":")
        if not sep:
            raise MimeError(f"malformed header line {text[:60]!r}")
        name = key.strip().lower()
        headers[name] = value.strip()
    return headers


def parse_entity(raw: bytes) -> Entity:
    """Split an entity into headers and body; a body-only entity has no headers."""
    if raw.startswith((b"\r\n", b"\n")):
        body = raw[2:] if raw.startswith(b"\r\n") else raw[1:]
        return Entity(raw, {}, body)
    match = _HEADER_END.search(raw)
    if match is None:
        raise MimeError("no blank line between headers and body")
    return Entity(raw, unfold_headers(raw[: match.start()]), raw[match.end() :])


def parse_part(span: Span) -> Part:
    """``parse_entity`` on a span: headers read from its start, the body left where it is."""
    if span.startswith(b"\n"):
        return Part({}, span.sub(1))
    if span.startswith(b"\r\n"):
        return Part({}, span.sub(2))
    head = span.read(0, MAX_HEADER_BLOCK)
    match = _HEADER_END.search(head)
    if match is None:
        raise MimeError("no blank line between headers and body")
    return Part(unfold_headers(head[: match.start()]), span.sub(match.end()))


def split_parts(body: Span, boundary: str) -> list[Span]:
    """``split_multipart`` on a span: each part as a window on the same bytes."""
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Span] = []
    start: int | None = None
    position = 0
    while True:
        index = body.find(delimiter, position)
        if index < 0:
            break
        if index != 0 and body.read(index - 1, index) != b"\n":
            position = index + len(delimiter)
            continue
        if start is not None:
            end = index - 1  # drop the LF
            if end > start and body.read(end - 1, end) == b"\r":
                end -= 1
            parts.append(body.sub(start, end))
        after = index + len(delimiter)
        if body.read(after, after + 2) == b"--":
            return parts
        line_end = body.find(b"\n", after)
        if line_end < 0:
            break
        start = line_end + 1
        position = start
    if not parts:
        raise MimeError("multipart body has no parts")
    raise MimeError("multipart body has no closing boundary")


def decoded_span(part: Part, spool: Spool) -> Span:
    """The part's body with its transfer encoding undone: the body itself, or decoded into ``spool``."""
    kind = (part.transfer_encoding or "").strip().lower()
    if kind in ("", "binary", "7bit", "8bit"):
        return part.body
    if kind == "base64":
        for chunk in _base64_decoded(part.body.chunks()):
            spool.write(chunk)
    else:
        spool.write(decode_transfer_encoding(part.body.read(), kind))
    return spool.span()


def _base64_decoded(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decode base64 a chunk at a time, as strictly as decoding it whole (``MimeError`` if invalid)."""
    pending = b""
    finished = False  # padding was seen: nothing may follow
    for chunk in chunks:
        pending += _WHITESPACE.sub(b"", chunk)
        if finished and pending:
            raise MimeError("invalid base64 body: data after the padding")
        usable = len(pending) - len(pending) % 4
        if usable:
            yield _b64(pending[:usable])
            finished = b"=" in pending[:usable]
            pending = pending[usable:]
    if pending:
        yield _b64(pending)


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise MimeError(f"invalid base64 body: {exc}") from exc


def canonical_span(span: Span, spool: Spool) -> Span:
    """The span with every line ending made CRLF (bare LFs become CRLF; CRLFs stay), into ``spool``."""
    carry = b""
    for chunk in span.chunks():
        data = carry + chunk
        carry = b"\r" if data.endswith(b"\r") else b""
        if carry:
            data = data[:-1]
        spool.write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    spool.write(carry)
    return spool.span()


def media_type(content_type: str) -> str:
    """``Application/PKCS7-MIME; smime-type=…`` → ``application/pkcs7-mime``."""
    return content_type.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=512)
def header_param(value: str, name: str) -> str | None:
    """One parameter of a structured header value, unquoted and RFC 2231-decoded (memoised)."""
    if not value:
        return None
    message = email.message.Message()
    message["x"] = value
    param = message.get_param(name, header="x")
    if param is None:
        return None
    if isinstance(param, tuple):
        return str(email.utils.collapse_rfc2231_value(param))
    return str(param)


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The raw bytes of each part of a multipart body, exactly as they were sent."""
    return [part.read() for part in split_parts(Span.of(body), boundary)]


def decode_transfer_encoding(body: bytes, encoding: str | None) -> bytes:
    """Undo base64 or quoted-printable; identity for none, binary, 7bit and 8bit."""
    kind = (encoding or "").strip().lower()
    if kind == "base64":
        try:
            return base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
        except binascii.Error as exc:
            raise MimeError(f"invalid base64 body: {exc}") from exc
    if kind == "quoted-printable":
        return quopri.decodestring(body)
    if kind in ("", "binary", "7bit", "8bit"):
        return body
    raise MimeError(f"unsupported Content-Transfer-Encoding {encoding!r}")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words (``=?utf-8?q?…?=``) in a header value."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


def filename_of(entity: Headed) -> str | None:
    """The filename an entity declares (Content-Disposition, else Content-Type ``name``), decoded."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = entity.param(param, header)
        if value:
            return decode_words(value)
    return None


def sanitize_filename(name: str | None, *, fallback: str) -> str:
    """A safe base name: no directories, control or reserved characters, device names or dots only."""
    if not name:
        return fallback
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    if not name or set(name) <= {"_", "."}:
        return fallback
    if name.split(".", 1)[0].upper() in _RESERVED_NAMES:
        name = "_" + name
    return name[:MAX_FILENAME]


def unquote_as2_name(value: str | None) -> str:
    """``"PARTNER WITH SPACE"`` → ``PARTNER WITH SPACE`` (quoted-pair escapes undone)."""
    text = (value or "").strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def quote_as2_name(name: str) -> str:
    """Quote an AS2 name that contains spaces or specials (RFC 4130 §6.2)."""
    if re.fullmatch(r"[!#-\[\]-~]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_headers(headers: list[tuple[str, str]]) -> bytes:
    """Header lines with CRLF endings and the blank line after them."""
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers) + b"\r\n"
