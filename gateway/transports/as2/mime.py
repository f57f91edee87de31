"""MIME on raw bytes: entities are split and hashed exactly as received, never re-serialised.

``parse_entity`` splits headers from body at the first blank line (CRLF or bare LF);
``split_multipart`` returns each part's bytes exactly between the boundary line's line end and
the line end before the next boundary (RFC 2046), which is what a signature covers.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.utils
import quopri
import re
import unicodedata
from dataclasses import dataclass
from email.header import decode_header, make_header

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


class MimeError(ValueError):
    """A MIME entity cannot be parsed."""


@dataclass(frozen=True)
class Entity:
    """A MIME entity: its exact bytes, its headers (lower-cased names) and its raw body."""

    raw: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters (``text/plain`` when absent)."""
        return media_type(self.headers.get("content-type", "text/plain"))

    def param(self, name: str, header: str = "content-type") -> str | None:
        """A parameter of a header (RFC 2231 continuations and encodings decoded)."""
        return header_param(self.headers.get(header, ""), name)

    def decoded_body(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        return decode_transfer_encoding(self.body, self.headers.get("content-transfer-encoding"))


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


def media_type(content_type: str) -> str:
    """``Application/PKCS7-MIME; smime-type=…`` → ``application/pkcs7-mime``."""
    return content_type.split(";", 1)[0].strip().lower()


def header_param(value: str, name: str) -> str | None:
    """One parameter of a structured header value, unquoted and RFC 2231-decoded."""
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
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[bytes] = []
    start: int | None = None
    position = 0
    while True:
        index = body.find(delimiter, position)
        if index < 0:
            break
        at_line_start = index == 0 or body[index - 1 : index] == b"\n"
        if not at_line_start:
            position = index + len(delimiter)
            continue
        if start is not None:
            end = index - 1  # drop the LF
            if end > start and body[end - 1 : end] == b"\r":
                end -= 1
            parts.append(body[start:end])
        after = index + len(delimiter)
        if body[after : after + 2] == b"--":
            return parts
        line_end = body.find(b"\n", after)
        if line_end < 0:
            break
        start = line_end + 1
        position = start
    if not parts:
        raise MimeError("multipart body has no parts")
    raise MimeError("multipart body has no closing boundary")


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


def filename_of(entity: Entity) -> str | None:
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
