"""A streaming BER/DER reader: walk CMS structures on a ``Span`` without loading their content.

Only tags and lengths are read here; small pieces (recipient infos, algorithm identifiers) are
handed to asn1crypto as bytes, and large content (encrypted or compressed octets, definite or
BER indefinite-length and constructed, as streaming senders write them) is yielded as spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from gateway.transports.as2.spans import Span

UNIVERSAL, CONTEXT = 0, 2
INTEGER, OCTET_STRING, OID, SEQUENCE, SET = 2, 4, 6, 16, 17
MAX_DEPTH = 32
_HEADER_PEEK = 32


class BerError(ValueError):
    """The bytes are not well-formed BER (truncated, bad length, too deep)."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """One tag-length-value header, at ``offset`` of its span."""

    offset: int
    tag_class: int
    constructed: bool
    tag: int
    header: int
    length: int | None  # None: indefinite length, ended by an end-of-contents marker

    @property
    def start(self) -> int:
        """Where the content begins."""
        return self.offset + self.header

    def is_(self, tag_class: int, tag: int) -> bool:
        """Whether this is ``[tag_class tag]``."""
        return self.tag_class == tag_class and self.tag == tag


def header_at(span: Span, offset: int) -> Tlv:
    """The header of the TLV at ``offset`` (its content is checked to fit in the span)."""
    head = span.read(offset, offset + _HEADER_PEEK)
    if len(head) < 2:
        raise BerError("truncated BER header")
    first = head[0]
    tag, position = first & 0x1F, 1
    if tag == 0x1F:
        tag = 0
        while True:
            if position >= len(head) or position > 5:
                raise BerError("bad BER tag")
            byte = head[position]
            position += 1
            tag = (tag << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
    if position >= len(head):
        raise BerError("truncated BER header")
    size_byte = head[position]
    position += 1
    length: int | None
    if size_byte < 0x80:
        length = size_byte
    elif size_byte == 0x80:
        if not first & 0x20:
            raise BerError("indefinite length on a primitive value")
        length = None
    else:
        count = size_byte & 0x7F
        if count > 8 or position + count > len(head):
            raise BerError("bad BER length")
        length = int.from_bytes(head[position : position + count], "big")
        position += count
    if length is not None and offset + position + length > len(span):
        raise BerError("truncated BER value")
    return Tlv(offset, first >> 6, bool(first & 0x20), tag, position, length)


def _is_end_marker(tlv: Tlv) -> bool:
    return tlv.tag_class == UNIVERSAL and tlv.tag == 0 and not tlv.constructed and tlv.length == 0


def end_of(span: Span, tlv: Tlv, depth: int = 0) -> int:
    """The offset just after the TLV (walking an indefinite-length one to its end marker)."""
    if tlv.length is not None:
        return tlv.start + tlv.length
    if depth > MAX_DEPTH:
        raise BerError("BER nested too deeply")
    position = tlv.start
    while True:
        child = header_at(span, position)
        if _is_end_marker(child):
            return position + 2
        position = end_of(span, child, depth + 1)


def children(span: Span, tlv: Tlv) -> Iterator[Tlv]:
    """The TLVs inside a constructed one, lazily (stop early to avoid walking the rest)."""
    if not tlv.constructed:
        raise BerError("a primitive value has no children")
    position = tlv.start
    stop = None if tlv.length is None else tlv.start + tlv.length
    while stop is None or position < stop:
        child = header_at(span, position)
        if stop is None and _is_end_marker(child):
            return
        yield child
        position = end_of(span, child)
    if position != stop:
        raise BerError("BER children overrun their parent")


def read_tlv(span: Span, tlv: Tlv, limit: int) -> bytes:
    """The whole TLV as bytes (for asn1crypto), refusing anything over ``limit`` bytes."""
    end = end_of(span, tlv)
    if end - tlv.offset > limit:
        raise BerError(f"a {end - tlv.offset}-byte structure where at most {limit} are expected")
    return span.read(tlv.offset, end)


def string_pieces(span: Span, tlv: Tlv, depth: int = 0) -> Iterator[Span]:
    """The content of a (possibly constructed, BER-segmented) string, piece by piece."""
    if not tlv.constructed:
        assert tlv.length is not None
        yield span.sub(tlv.start, tlv.start + tlv.length)
        return
    if depth > MAX_DEPTH:
        raise BerError("BER nested too deeply")
    for child in children(span, tlv):
        yield from string_pieces(span, child, depth + 1)
