"""The CMS engine AS2 needs: asn1crypto for the structures, ``cryptography`` for the maths, zlib.

``sign`` makes a detached SignedData; ``verify_detached`` checks one against the partner's
*configured* certificates only; ``encrypt``/``decrypt`` handle EnvelopedData (AES-CBC, 3DES)
and AuthEnvelopedData (AES-GCM) with RSA v1.5 or OAEP key transport and any number of
recipients; ``compress``/``decompress`` handle RFC 3274 CompressedData. BER input (indefinite
lengths from streaming senders) is accepted everywhere.

Inbound content is streamed: ``decrypt_to`` and ``decompress_to`` read a ``Span`` and write a
``Spool`` a chunk at a time, and ``verify_detached`` hashes a span, so a large message is never
held in memory. The byte-string forms wrap them.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.transports.as2 import ber, der_signers
from gateway.transports.as2.algorithms import UnsupportedAlgorithm, digest_bytes, hash_for, normalize_digest
from gateway.transports.as2.spans import Span, Spool

ZLIB_OID = "1.2.840.113549.1.9.16.3.8"
SMALL_STRUCTURE = 1024 * 1024  # recipient infos, algorithm identifiers, MACs: never larger
CHUNK_OUT = 1024 * 1024  # inflate at most this much at a time
_CONTENT_CIPHERS = (
    "aes128_cbc",
    "aes192_cbc",
    "aes256_cbc",
    "tripledes_3key",
    "aes128_gcm",
    "aes192_gcm",
    "aes256_gcm",
)
CIPHERS = ("aes128-cbc", "aes192-cbc", "aes256-cbc", "aes128-gcm", "aes256-gcm", "3des")
_CIPHER_SPEC: dict[str, tuple[str, int]] = {
    "aes128-cbc": ("aes128_cbc", 16),
    "aes192-cbc": ("aes192_cbc", 24),
    "aes256-cbc": ("aes256_cbc", 32),
    "aes128-gcm": ("aes128_gcm", 16),
    "aes256-gcm": ("aes256_gcm", 32),
    "3des": ("tripledes_3key", 24),
}


class CmsError(Exception):
    """A CMS structure is malformed or uses something we do not support."""


class SignatureInvalid(CmsError):
    """No configured certificate verifies the signature (or the content does not match it)."""


class DecryptionFailed(CmsError):
    """The envelope could not be opened: one message for every cause (no oracle)."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


@dataclass(frozen=True)
class KeyPair:
    """One of our decryption/signing keys with its certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    key_id: str = ""
    as2_id: str = ""


@dataclass(frozen=True)
class Verified:
    """What a verified signature told us: the digest used and the certificate that matched."""

    digest: str
    cert: x509.Certificate


# --- helpers ------------------------------------------------------------------------------------


def content_type_of(data: bytes | Span) -> str:
    """``signed_data``, ``enveloped_data``, ``authenticated_enveloped_data``, ``compressed_data``…"""
    span = data if isinstance(data, Span) else Span.of(data)
    try:
        top = ber.header_at(span, 0)
        first = next(ber.children(span, top))
        if not first.is_(ber.UNIVERSAL, ber.OID):
            raise CmsError("not a CMS ContentInfo")
        return str(cms.ContentType.load(ber.read_tlv(span, first, 256)).native)
    except (ValueError, TypeError, StopIteration) as exc:
        raise CmsError(f"not a readable CMS structure: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    parsed = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    parsed.native  # noqa: B018 - parse it all now: the cached object is then only read, by any thread
    return parsed


def _matches(identifier: cms.Asn1Value, cert: x509.Certificate) -> bool:
    """Whether a SignerIdentifier/RecipientIdentifier names this certificate (False if unreadable)."""
    ours = _asn1_cert(cert)
    try:
        if identifier.name == "issuer_and_serial_number":
            chosen = identifier.chosen
            if chosen["serial_number"].native != ours.serial_number:
                return False
            # Identical DER is the usual case; otherwise compare names as X.500 does (case, spaces).
            return bool(chosen["issuer"].dump() == ours.issuer.dump() or chosen["issuer"] == ours.issuer)
        if identifier.name in ("subject_key_identifier", "rid"):
            return bool(identifier.chosen.native == ours.key_identifier)
    except (ValueError, TypeError, KeyError):
        pass
    return False


def _names_signer(sid: bytes, cert: x509.Certificate) -> bool:
    """Whether a SignerIdentifier (DER) names this certificate: the same DER, or by ``_matches``."""
    if sid == _signer_pieces(cert)[0]:
        return True
    try:
        identifier = cms.SignerIdentifier.load(sid)
    except (ValueError, TypeError):
        return False
    return _matches(identifier, cert)


def _issuer_and_serial(cert: x509.Certificate) -> cms.IssuerAndSerialNumber:
    ours = _asn1_cert(cert)
    return cms.IssuerAndSerialNumber({"issuer": ours.issuer, "serial_number": ours.serial_number})


def _attr_set_der(attrs: cms.CMSAttributes) -> bytes:
    """The DER ``SET OF`` encoding of signed attributes, as signatures cover them."""
    if attrs.contents is None:
        attrs.dump()
    return _tlv(0x31, bytes(attrs.contents))


def _tlv(tag: int, contents: bytes) -> bytes:
    length = len(contents)
    if length < 0x80:
        return bytes([tag, length]) + contents
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + contents


# --- signatures -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _signer_pieces(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """DER of the certificate's IssuerAndSerialNumber and of the certificate itself."""
    return bytes(_issuer_and_serial(cert).dump()), cert.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=32)
def _algorithm_pieces(digest: str, pss: bool) -> tuple[bytes, bytes]:
    """DER of the DigestAlgorithm and the SignedDigestAlgorithm (with RSASSA-PSS parameters)."""
    digest_algorithm = bytes(algos.DigestAlgorithm({"algorithm": digest}).dump())
    if not pss:
        signature_algorithm = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    else:
        signature_algorithm = algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": digest},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
                        "salt_length": hash_for(digest).digest_size,
                    }
                ),
            }
        )
    return digest_algorithm, bytes(signature_algorithm.dump())


_OID_DATA = bytes(core.ObjectIdentifier("1.2.840.113549.1.7.1").dump())
_OID_SIGNED_DATA = bytes(core.ObjectIdentifier("1.2.840.113549.1.7.2").dump())
_OID_CONTENT_TYPE = bytes(core.ObjectIdentifier("1.2.840.113549.1.9.3").dump())
_OID_MESSAGE_DIGEST = bytes(core.ObjectIdentifier("1.2.840.113549.1.9.4").dump())
_OID_SIGNING_TIME = bytes(core.ObjectIdentifier("1.2.840.113549.1.9.5").dump())
_V1 = b"\x02\x01\x01"


def sign(
    content: bytes,
    signer: KeyPair,
    *,
    digest: str = "sha256",
    pss: bool = False,
    signed_attributes: bool = True,
) -> bytes:
    """A detached DER SignedData over ``content`` (no CMSAlgorithmProtection: IBM Sterling).

    Written as DER directly (the same bytes asn1crypto would produce), since an MDN is signed
    for every message: content type, signing time and message digest as signed attributes.
    """
    hash_alg = hash_for(digest)
    sid, certificate = _signer_pieces(signer.cert)
    digest_algorithm, signature_algorithm = _algorithm_pieces(digest, pss)
    attributes = b""
    if signed_attributes:
        signing_time = datetime.now(UTC).strftime("%y%m%d%H%M%SZ").encode("ascii")
        parts = [
            _tlv(0x30, _OID_CONTENT_TYPE + _tlv(0x31, _OID_DATA)),
            _tlv(0x30, _OID_SIGNING_TIME + _tlv(0x31, _tlv(0x17, signing_time))),
            _tlv(0x30, _OID_MESSAGE_DIGEST + _tlv(0x31, _tlv(0x04, digest_bytes(digest, content)))),
        ]
        encoded = b"".join(sorted(parts))  # DER SET OF order: openssl re-encodes to check
        to_sign = _tlv(0x31, encoded)
        attributes = _tlv(0xA0, encoded)  # [0] IMPLICIT in the SignerInfo
    else:
        to_sign = content
    if pss:
        pad: asym_padding.AsymmetricPadding = asym_padding.PSS(
            mgf=asym_padding.MGF1(hash_alg), salt_length=hash_alg.digest_size
        )
    else:
        pad = asym_padding.PKCS1v15()
    signature = signer.key.sign(to_sign, pad, hash_alg)
    signer_info = _tlv(
        0x30, _V1 + sid + digest_algorithm + attributes + signature_algorithm + _tlv(0x04, signature)
    )
    signed_data = _tlv(
        0x30,
        _V1
        + _tlv(0x31, digest_algorithm)
        + _tlv(0x30, _OID_DATA)
        + _tlv(0xA0, certificate)
        + _tlv(0x31, signer_info),
    )
    return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, signed_data))


@dataclass(frozen=True)
class _Signer:
    """What verification reads from one SignerInfo, taken out of the DER once as plain values."""

    sid: bytes  # the SignerIdentifier's DER
    digest_name: str  # as the SignerInfo names it (asn1crypto's name, or the dotted OID)
    signature: bytes
    signed_attrs: bytes | None  # the DER SET OF that was signed; None: the content was signed directly
    content_type: str | None
    message_digest: bytes | None
    scheme: str | None  # rsassa_pkcs1v15, rsassa_pss, ecdsa…; None when unreadable
    pss: tuple[str, str] | None  # (hash, MGF1 hash) when the PSS parameters are given


def _read_signer(signer: cms.SignerInfo) -> _Signer:
    """Read the fields verification uses (asn1crypto raises on malformed ones: the caller maps that)."""
    content_type = message_digest = attrs_der = None
    attrs = signer["signed_attrs"]
    if not isinstance(attrs, core.Void) and len(attrs):
        for attr in attrs:
            kind = attr["type"].native
            if kind == "content_type":
                content_type = attr["values"][0].native
            elif kind == "message_digest":
                message_digest = attr["values"][0].native
        attrs_der = _attr_set_der(attrs)
    scheme, pss = _scheme(signer["signature_algorithm"])
    return _Signer(
        bytes(signer["sid"].dump()),
        str(signer["digest_algorithm"]["algorithm"].native or ""),
        bytes(signer["signature"].native),
        attrs_der,
        content_type,
        message_digest,
        scheme,
        pss,
    )


def _scheme(algorithm: algos.SignedDigestAlgorithm) -> tuple[str | None, tuple[str, str] | None]:
    """The signature scheme and the PSS (hash, MGF1 hash) when given; None when unreadable."""
    try:
        scheme = algorithm.signature_algo
        if scheme == "rsassa_pss" and algorithm["parameters"].native is not None:
            params = algorithm["parameters"]
            return scheme, (
                normalize_digest(params["hash_algorithm"]["algorithm"].native) or "",
                normalize_digest(params["mask_gen_algorithm"]["parameters"]["algorithm"].native) or "",
            )
        return scheme, None
    except (ValueError, TypeError, KeyError):
        return None, None  # no certificate will verify it; the verification loop says so


@functools.lru_cache(maxsize=64)
def _scheme_of(algorithm_der: bytes) -> tuple[str | None, tuple[str, str] | None]:
    return _scheme(algos.SignedDigestAlgorithm.load(algorithm_der))


@functools.lru_cache(maxsize=64)
def _digest_name(oid_der: bytes) -> str:
    return str(algos.DigestAlgorithmId.load(oid_der).native or "")


def _plain_signer(raw: der_signers.RawSigner) -> _Signer:
    """A signer read by the DER walker, as ``_read_signer`` reads it (``Unusual`` when it could not)."""
    content_type = message_digest = attrs_der = None
    if raw.signed_attrs and raw.signed_attrs_content is not None:
        for encoded in raw.signed_attrs:
            kind, values = der_signers.attribute(encoded)
            if not values:
                raise der_signers.Unusual
            if kind == _OID_CONTENT_TYPE:
                content_type = "data" if values[0] == _OID_DATA else values[0].hex()
            elif kind == _OID_MESSAGE_DIGEST:
                message_digest = der_signers.octets(values[0])
        attrs_der = _tlv(0x31, raw.signed_attrs_content)
    scheme, pss = _scheme_of(raw.signature_algorithm)
    return _Signer(
        raw.sid,
        _digest_name(raw.digest_oid),
        raw.signature,
        attrs_der,
        content_type,
        message_digest,
        scheme,
        pss,
    )


def _verify_with(
    cert: x509.Certificate,
    signer: _Signer,
    content_digest: Callable[[str], bytes],
    digest: str,
) -> None:
    """Check one signature over its signed attributes, or (without any) over the content's digest."""
    public_key = cert.public_key()
    data = signer.signed_attrs

    def message(name: str) -> tuple[bytes, hashes.HashAlgorithm | Prehashed]:
        if data is not None:
            return data, hash_for(name)
        return content_digest(name), Prehashed(hash_for(name))

    if signer.scheme is None:
        raise ValueError("unreadable signature algorithm")
    if isinstance(public_key, rsa.RSAPublicKey):
        if signer.scheme == "rsassa_pss":
            # RFC 4055 says absent parameters mean SHA-1, but pyas2lib/oscrypto omit them while
            # hashing with the signer's digest: accept either reading.
            candidates = [signer.pss] if signer.pss else [(digest, digest), ("sha1", "sha1")]
            for index, (pss_hash, mgf_hash) in enumerate(candidates):
                signed, algorithm_used = message(pss_hash)
                try:
                    public_key.verify(
                        signer.signature,
                        signed,
                        asym_padding.PSS(
                            mgf=asym_padding.MGF1(hash_for(mgf_hash)), salt_length=asym_padding.PSS.AUTO
                        ),
                        algorithm_used,
                    )
                    return
                except InvalidSignature:
                    if index == len(candidates) - 1:
                        raise
        else:
            signed, algorithm_used = message(digest)
            public_key.verify(signer.signature, signed, asym_padding.PKCS1v15(), algorithm_used)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        signed, algorithm_used = message(digest)
        public_key.verify(signer.signature, signed, ec.ECDSA(algorithm_used))
    else:
        raise SignatureInvalid(f"unsupported signer key type {type(public_key).__name__}")


def _signers(signature_der: bytes) -> list[_Signer]:
    """The signers of a SignedData, read once (``CmsError`` if unreadable)."""
    try:  # plain DER, as nearly every sender writes it, without asn1crypto's objects
        return [_plain_signer(raw) for raw in der_signers.read_signers(signature_der, _OID_SIGNED_DATA)]
    except der_signers.Unusual:
        pass
    try:
        info = cms.ContentInfo.load(signature_der)
        if info["content_type"].native != "signed_data":
            raise CmsError("the signature is not a CMS SignedData")
        return [_read_signer(signer) for signer in info["content"]["signer_infos"]]
    except CmsError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/etc. on bad input
        raise CmsError(f"not a readable CMS structure: {exc}") from exc


def verify_detached(
    signature_der: bytes,
    content: bytes | Span,
    certificates: Sequence[x509.Certificate],
    *,
    at: datetime | None = None,
    allow_expired: bool = False,
) -> Verified:
    """Verify a detached SignedData over ``content`` (bytes, or a span hashed as it streams)."""
    signers = _signers(signature_der)
    if not certificates:
        raise SignatureInvalid("no certificate is configured to verify this partner's signatures")
    span = content if isinstance(content, Span) else Span.of(content)
    digests: dict[str, bytes] = {}

    def content_digest(name: str) -> bytes:
        if name not in digests:
            digests[name] = digest_bytes(name, span.chunks())
        return digests[name]

    now = at or datetime.now(UTC)
    problems: list[str] = []
    for signer in signers:
        digest = normalize_digest(signer.digest_name)
        if digest is None or digest == "md5":
            raise UnsupportedAlgorithm(f"signature digest {signer.digest_name}")
        if signer.signed_attrs is not None:
            if signer.content_type != "data":
                problems.append("signed content type is not id-data")
                continue
            if signer.message_digest != content_digest(digest):
                problems.append("message digest does not match the content")
                continue
        named = [c for c in certificates if _names_signer(signer.sid, c)]
        for cert in named + [c for c in certificates if c not in named]:
            try:
                _verify_with(cert, signer, content_digest, digest)
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                continue
            if not allow_expired and not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
                problems.append(f"certificate {cert.serial_number:x} is outside its validity period")
                continue
            return Verified(digest, cert)
        problems.append("no configured certificate verifies the signature")
    raise SignatureInvalid("; ".join(problems) or "no signer")


# --- encryption -----------------------------------------------------------------------------------


def _pad(data: bytes, block_bits: int) -> bytes:
    padder = padding.PKCS7(block_bits).padder()
    return padder.update(data) + padder.finalize()


def _recipient_info(cert: x509.Certificate, cek: bytes, oaep: bool) -> cms.RecipientInfo:
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise UnsupportedAlgorithm("only RSA recipients are supported")
    if oaep:
        encrypted = public_key.encrypt(
            cek,
            asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        algorithm = cms.KeyEncryptionAlgorithm(
            {
                "algorithm": "rsaes_oaep",
                "parameters": algos.RSAESOAEPParams(
                    {
                        "hash_algorithm": {"algorithm": "sha256"},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                    }
                ),
            }
        )
    else:
        encrypted = public_key.encrypt(cek, asym_padding.PKCS1v15())
        algorithm = cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"})
    return cms.RecipientInfo(
        {
            "ktri": cms.KeyTransRecipientInfo(
                {
                    "version": "v0",
                    "rid": cms.RecipientIdentifier({"issuer_and_serial_number": _issuer_and_serial(cert)}),
                    "key_encryption_algorithm": algorithm,
                    "encrypted_key": encrypted,
                }
            )
        }
    )


def encrypt(
    content: bytes, recipients: Sequence[x509.Certificate], *, cipher: str = "aes256-cbc", oaep: bool = False
) -> bytes:
    """DER EnvelopedData (or AuthEnvelopedData for GCM) for every recipient certificate."""
    if cipher not in _CIPHER_SPEC:
        raise UnsupportedAlgorithm(f"cipher {cipher}")
    oid_name, key_size = _CIPHER_SPEC[cipher]
    cek = os.urandom(key_size)
    infos = [_recipient_info(cert, cek, oaep) for cert in recipients]
    if cipher.endswith("-gcm"):
        nonce = os.urandom(12)
        sealed = AESGCM(cek).encrypt(nonce, content, None)
        ciphertext, tag = sealed[:-16], sealed[-16:]
        params = algos.CcmParams({"aes_nonce": nonce, "aes_icvlen": 16})
        auth = cms.AuthEnvelopedData(
            {
                "version": "v0",
                "recipient_infos": infos,
                "auth_encrypted_content_info": {
                    "content_type": "data",
                    "content_encryption_algorithm": {"algorithm": oid_name, "parameters": params},
                    "encrypted_content": ciphertext,
                },
                "mac": tag,
            }
        )
        return bytes(
            cms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": auth}).dump()
        )
    if cipher == "3des":
        iv = os.urandom(8)
        encryptor = Cipher(TripleDES(cek), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(_pad(content, 64)) + encryptor.finalize()
    else:
        iv = os.urandom(16)
        encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(_pad(content, 128)) + encryptor.finalize()
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": infos,
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": oid_name, "parameters": core.OctetString(iv)},
                "encrypted_content": ciphertext,
            },
        }
    )
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


def _unwrap_key(info: cms.KeyTransRecipientInfo, key: rsa.RSAPrivateKey) -> bytes:
    algorithm = info["key_encryption_algorithm"]
    encrypted_key = info["encrypted_key"].native
    if algorithm["algorithm"].native == "rsaes_oaep":
        params = algorithm["parameters"]
        hash_name = normalize_digest(params["hash_algorithm"]["algorithm"].native) or "sha1"
        mgf_name = normalize_digest(params["mask_gen_algorithm"]["parameters"]["algorithm"].native) or "sha1"
        return key.decrypt(
            encrypted_key,
            asym_padding.OAEP(
                mgf=asym_padding.MGF1(hash_for(mgf_name)), algorithm=hash_for(hash_name), label=None
            ),
        )
    return key.decrypt(encrypted_key, asym_padding.PKCS1v15())


@dataclass(frozen=True)
class _Envelope:
    """The parts of an EnvelopedData/AuthEnvelopedData that decryption needs (content left on disk)."""

    recipients: cms.RecipientInfos
    algorithm: algos.EncryptionAlgorithm
    content: ber.Tlv | None
    mac: bytes | None


def _envelope(span: Span) -> _Envelope:
    """Walk a ContentInfo holding (Auth)EnvelopedData; raises ``ValueError`` when malformed."""
    top = ber.header_at(span, 0)
    fields = ber.children(span, top)
    kind = cms.ContentType.load(ber.read_tlv(span, next(fields), 256)).native
    if kind not in ("enveloped_data", "authenticated_enveloped_data"):
        raise ValueError(f"{kind} is not an envelope")
    envelope = ber.header_at(span, next(fields).start)
    recipients: cms.RecipientInfos | None = None
    algorithm: algos.EncryptionAlgorithm | None = None
    content: ber.Tlv | None = None
    mac: bytes | None = None
    for part in ber.children(span, envelope):
        if recipients is None and part.is_(ber.UNIVERSAL, ber.SET):
            recipients = cms.RecipientInfos.load(ber.read_tlv(span, part, SMALL_STRUCTURE))
        elif algorithm is None and part.is_(ber.UNIVERSAL, ber.SEQUENCE):
            inner = ber.children(span, part)
            next(inner)  # the content type: always id-data for AS2
            algorithm = algos.EncryptionAlgorithm.load(ber.read_tlv(span, next(inner), SMALL_STRUCTURE))
            content = next(inner, None)
            if kind == "enveloped_data":
                break  # nothing after the content is needed: do not walk past it
        elif algorithm is not None and part.is_(ber.UNIVERSAL, ber.OCTET_STRING):
            pieces = list(ber.string_pieces(span, part))
            if sum(len(piece) for piece in pieces) > SMALL_STRUCTURE:
                raise ValueError("the MAC is too large")
            mac = b"".join(piece.read() for piece in pieces)
            break
    if recipients is None or algorithm is None or (kind != "enveloped_data" and mac is None):
        raise ValueError("the envelope lacks recipients, an algorithm or its MAC")
    return _Envelope(recipients, algorithm, content, mac)


def _ciphertext(span: Span, content: ber.Tlv | None) -> Iterator[bytes]:
    if content is None:
        return
    for piece in ber.string_pieces(span, content):
        yield from piece.chunks()


def _decrypt_content(
    algorithm: algos.EncryptionAlgorithm,
    cek: bytes,
    ciphertext: Iterator[bytes],
    mac: bytes | None,
    out: Spool,
) -> None:
    """Decrypt into ``out``; raises ``ValueError``/``InvalidTag`` when the key or content is wrong."""
    name = algorithm["algorithm"].native
    if name in ("aes128_gcm", "aes192_gcm", "aes256_gcm"):
        params = algos.CcmParams.load(algorithm["parameters"].dump())
        if mac is None:
            raise ValueError("AES-GCM without a MAC")
        opener = Cipher(algorithms.AES(cek), modes.GCM(params["aes_nonce"].native, mac)).decryptor()
        for chunk in ciphertext:
            out.write(opener.update(chunk))
        out.write(opener.finalize())  # checks the tag; the caller discards ``out`` when it fails
        return
    if name == "tripledes_3key":
        decryptor = Cipher(TripleDES(cek), modes.CBC(algorithm.encryption_iv)).decryptor()
        unpadder = padding.PKCS7(64).unpadder()
    elif name in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
        decryptor = Cipher(algorithms.AES(cek), modes.CBC(algorithm.encryption_iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
    else:
        raise UnsupportedAlgorithm(f"content encryption {name}")
    for chunk in ciphertext:
        out.write(unpadder.update(decryptor.update(chunk)))
    out.write(unpadder.update(decryptor.finalize()) + unpadder.finalize())


def decrypt_to(data: Span, keys: Sequence[KeyPair], out: Spool) -> None:
    """Open an EnvelopedData/AuthEnvelopedData into ``out`` with whichever of our keys it was made for.

    Every recipient info is tried against every key (named ones first); every failure raises
    the same ``DecryptionFailed`` after the same work, so errors reveal nothing (no oracle).
    The ciphertext streams from ``data``; ``out`` holds only the plaintext of a successful attempt.
    """
    try:
        envelope = _envelope(data)
        name = envelope.algorithm["algorithm"].native
        recipients = list(envelope.recipients)
    except (ValueError, TypeError, KeyError, StopIteration):
        raise DecryptionFailed() from None
    if name not in _CONTENT_CIPHERS:
        raise UnsupportedAlgorithm(f"content encryption {name}")
    attempts: list[tuple[cms.KeyTransRecipientInfo, KeyPair]] = []
    for recipient in recipients:
        if recipient.name != "ktri":
            continue
        ktri = recipient.chosen
        try:
            named = [k for k in keys if _matches(ktri["rid"], k.cert)]
        except (ValueError, TypeError):
            continue
        attempts.extend((ktri, k) for k in named)
        attempts.extend((ktri, k) for k in keys if k not in named)
    for ktri, pair in attempts:
        try:
            cek = _unwrap_key(ktri, pair.key)
            _decrypt_content(envelope.algorithm, cek, _ciphertext(data, envelope.content), envelope.mac, out)
            return
        except (ValueError, InvalidTag, TypeError, UnsupportedAlgorithm):
            out.truncate()
            continue
    raise DecryptionFailed()


def decrypt(data: bytes, keys: Sequence[KeyPair]) -> bytes:
    """``decrypt_to`` for a byte string: the plaintext as bytes."""
    out = Spool(memory=len(data) + 64)
    try:
        decrypt_to(Span.of(data), keys, out)
        return out.span().read()
    finally:
        out.close()


# --- compression ----------------------------------------------------------------------------------


def compress(content: bytes) -> bytes:
    """DER CompressedData (zlib) around ``content``."""
    compressed = cms.CompressedData(
        {
            "version": "v0",
            "compression_algorithm": {"algorithm": ZLIB_OID},
            "encap_content_info": {"content_type": "data", "content": zlib.compress(content)},
        }
    )
    return bytes(cms.ContentInfo({"content_type": "compressed_data", "content": compressed}).dump())


def _compressed_content(span: Span) -> Iterator[Span]:
    """The zlib stream inside a CompressedData, piece by piece (``CmsError`` when malformed)."""
    try:
        top = ber.header_at(span, 0)
        fields = ber.children(span, top)
        kind = cms.ContentType.load(ber.read_tlv(span, next(fields), 256)).native
        if kind != "compressed_data":
            raise CmsError("not a CMS CompressedData")
        compressed = ber.header_at(span, next(fields).start)
        parts = ber.children(span, compressed)
        next(parts)  # version
        algorithm = cms.CompressionAlgorithm.load(ber.read_tlv(span, next(parts), SMALL_STRUCTURE))
        if algorithm["algorithm"].dotted != ZLIB_OID:
            raise UnsupportedAlgorithm("compression algorithm")
        encapsulated = ber.children(span, next(parts))
        next(encapsulated)  # the content type
        explicit = next(encapsulated, None)
        if explicit is None:
            return
        yield from ber.string_pieces(span, ber.header_at(span, explicit.start))
    except (CmsError, UnsupportedAlgorithm):
        raise
    except (ValueError, TypeError, KeyError, StopIteration) as exc:
        raise CmsError(f"not a readable CMS structure: {exc}") from exc


def decompress_to(data: Span, out: Spool, *, max_bytes: int | None = None) -> None:
    """Inflate a CompressedData (zlib) into ``out`` a chunk at a time, at most ``max_bytes`` (zip bombs)."""
    inflater = zlib.decompressobj()
    size = 0
    try:
        for piece in _compressed_content(data):
            for chunk in piece.chunks():
                pending = chunk
                while pending and not inflater.eof:
                    inflated = inflater.decompress(pending, CHUNK_OUT)
                    size += len(inflated)
                    if max_bytes and size > max_bytes:
                        raise CmsError(f"decompressed content exceeds {max_bytes} bytes")
                    out.write(inflated)
                    pending = inflater.unconsumed_tail
        tail = inflater.flush()
    except zlib.error as exc:
        raise CmsError(f"compressed content is corrupt: {exc}") from exc
    if max_bytes and size + len(tail) > max_bytes:
        raise CmsError(f"decompressed content exceeds {max_bytes} bytes")
    out.write(tail)


def decompress(data: bytes, *, max_bytes: int | None = None) -> bytes:
    """``decompress_to`` for a byte string: the content as bytes."""
    out = Spool(memory=max(max_bytes or 0, 64 * len(data), SMALL_STRUCTURE))
    try:
        decompress_to(Span.of(data), out, max_bytes=max_bytes)
        return out.span().read()
    finally:
        out.close()
