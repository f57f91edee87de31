"""The SignerInfos of a DER SignedData, read straight from the bytes: the fast path of ``cms._signers``.

Only plain DER of the expected shape is read here (definite lengths, low tag numbers, primitive
strings); anything else raises ``Unusual`` and the caller reads the structure with asn1crypto,
which also reports malformed input. Every piece is returned as the bytes it was encoded as.

It does not walk through ``ber`` (the streaming reader over a ``Span``) on purpose: read that
way, a signature's ~34 headers cost ~100 µs against ~20 µs here, on every signed message.
"""

from __future__ import annotations

from dataclasses import dataclass

_INTEGER, _OCTET_STRING, _OID, _SEQUENCE, _SET = 0x02, 0x04, 0x06, 0x30, 0x31
_CONTEXT_0 = 0xA0  # [0], constructed


class Unusual(Exception):
    """Not plain DER of the expected shape: read it with asn1crypto."""


@dataclass(frozen=True)
class RawSigner:
    """One SignerInfo's fields as encoded."""

    sid: bytes  # the SignerIdentifier's TLV
    digest_oid: bytes  # the digest algorithm's OBJECT IDENTIFIER TLV
    signed_attrs: list[bytes] | None  # each Attribute's TLV; None without a [0] signedAttrs
    signed_attrs_content: bytes | None  # the [0] IMPLICIT SET OF's content (what the signature covers)
    signature_algorithm: bytes  # the AlgorithmIdentifier's TLV
    signature: bytes  # the OCTET STRING's content


# (tag byte, offset of the TLV, start of its content, end of its content)
_Tlv = tuple[int, int, int, int]


def _header(der: bytes, offset: int, end: int) -> _Tlv:
    if offset + 2 > end:
        raise Unusual
    tag, size, start = der[offset], der[offset + 1], offset + 2
    if tag & 0x1F == 0x1F:
        raise Unusual
    if size & 0x80:
        count = size & 0x7F
        if count == 0 or count > 4 or start + count > end:  # 0: BER indefinite length
            raise Unusual
        size = int.from_bytes(der[start : start + count], "big")
        start += count
    if start + size > end:
        raise Unusual
    return tag, offset, start, start + size


def _children(der: bytes, parent: _Tlv) -> list[_Tlv]:
    if not parent[0] & 0x20:
        raise Unusual
    found, position, end = [], parent[2], parent[3]
    while position < end:
        found.append(_header(der, position, end))
        position = found[-1][3]
    return found


def _whole(der: bytes, tlv: _Tlv) -> bytes:
    return der[tlv[1] : tlv[3]]


def read_signers(der: bytes, signed_data_oid: bytes) -> list[RawSigner]:
    """The signers of a ContentInfo holding a SignedData (``Unusual`` for anything else)."""
    info = _header(der, 0, len(der))
    parts = _children(der, info) if info[0] == _SEQUENCE else []
    if len(parts) != 2 or _whole(der, parts[0]) != signed_data_oid or parts[1][0] != _CONTEXT_0:
        raise Unusual
    inner = _children(der, parts[1])
    if len(inner) != 1 or inner[0][0] != _SEQUENCE:
        raise Unusual
    fields = _children(der, inner[0])
    # version, digest algorithms, content, optional [0] certificates and [1] CRLs, signer infos
    if len(fields) < 4 or fields[-1][0] != _SET or any(f[0] == _SET for f in fields[3:-1]):
        raise Unusual
    return [_signer(der, entry) for entry in _children(der, fields[-1])]


def _signer(der: bytes, tlv: _Tlv) -> RawSigner:
    fields = _children(der, tlv) if tlv[0] == _SEQUENCE else []
    if len(fields) < 5 or fields[0][0] != _INTEGER:
        raise Unusual
    attrs = fields[3] if fields[3][0] == _CONTEXT_0 else None
    rest = fields[4:] if attrs is not None else fields[3:]
    if len(rest) < 2 or rest[0][0] != _SEQUENCE or rest[1][0] != _OCTET_STRING:
        raise Unusual
    digest = _children(der, fields[2]) if fields[2][0] == _SEQUENCE else []
    if not digest or digest[0][0] != _OID:
        raise Unusual
    return RawSigner(
        _whole(der, fields[1]),
        _whole(der, digest[0]),
        None if attrs is None else [_whole(der, a) for a in _children(der, attrs)],
        None if attrs is None else der[attrs[2] : attrs[3]],
        _whole(der, rest[0]),
        der[rest[1][2] : rest[1][3]],
    )


def attribute(der: bytes) -> tuple[bytes, list[bytes]]:
    """An Attribute's type (OID TLV) and its values' TLVs."""
    outer = _header(der, 0, len(der))
    parts = _children(der, outer) if outer[0] == _SEQUENCE else []
    if len(parts) != 2 or parts[0][0] != _OID or parts[1][0] != _SET:
        raise Unusual
    return _whole(der, parts[0]), [_whole(der, v) for v in _children(der, parts[1])]


def octets(der: bytes) -> bytes:
    """The content of a primitive OCTET STRING TLV."""
    tag, _, start, end = _header(der, 0, len(der))
    if tag != _OCTET_STRING:
        raise Unusual
    return der[start:end]
