"""The CMS engine AS2 needs: asn1crypto for the structures, ``cryptography`` for the maths, zlib.

``sign`` makes a detached SignedData; ``verify_detached`` checks one against the partner's
*configured* certificates only; ``encrypt``/``decrypt`` handle EnvelopedData (AES-CBC, 3DES)
and AuthEnvelopedData (AES-GCM) with RSA v1.5 or OAEP key transport and any number of
recipients; ``compress``/``decompress`` handle RFC 3274 CompressedData. BER input (indefinite
lengths from streaming senders) is accepted everywhere.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
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
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.transports.as2.algorithms import UnsupportedAlgorithm, digest_bytes, hash_for, normalize_digest

ZLIB_OID = "1.2.840.113549.1.9.16.3.8"
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


def load_content_info(data: bytes) -> cms.ContentInfo:
    """Parse DER or BER CMS, raising ``CmsError`` for anything unreadable or truncated."""
    try:
        info = cms.ContentInfo.load(data)
        _ = info["content_type"].native
        info["content"].native  # noqa: B018 - forces a full parse; truncation shows up here
    except Exception as exc:  # asn1crypto raises ValueError/TypeError/etc. on bad input
        raise CmsError(f"not a readable CMS structure: {exc}") from exc
    return info


def content_type_of(data: bytes) -> str:
    """``signed_data``, ``enveloped_data``, ``authenticated_enveloped_data``, ``compressed_data``…"""
    return str(load_content_info(data)["content_type"].native)


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def _matches(identifier: cms.Asn1Value, cert: x509.Certificate) -> bool:
    """Whether a SignerIdentifier/RecipientIdentifier names this certificate."""
    ours = _asn1_cert(cert)
    if identifier.name == "issuer_and_serial_number":
        chosen = identifier.chosen
        return bool(chosen["issuer"] == ours.issuer and chosen["serial_number"].native == ours.serial_number)
    if identifier.name in ("subject_key_identifier", "rid"):
        return bool(identifier.chosen.native == ours.key_identifier)
    return False


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


def sign(
    content: bytes,
    signer: KeyPair,
    *,
    digest: str = "sha256",
    pss: bool = False,
    signed_attributes: bool = True,
) -> bytes:
    """A detached DER SignedData over ``content`` (no CMSAlgorithmProtection: IBM Sterling)."""
    hash_alg = hash_for(digest)
    message_digest = digest_bytes(digest, content)
    signer_info: dict[str, object] = {
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": _issuer_and_serial(signer.cert)}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": digest}),
    }
    if signed_attributes:
        attributes = [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": datetime.now(UTC)})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [message_digest]}),
        ]
        attributes.sort(key=lambda attr: attr.dump())  # DER SET OF order: openssl re-encodes to check
        attrs = cms.CMSAttributes(attributes)
        signer_info["signed_attrs"] = attrs
        to_sign = _attr_set_der(attrs)
    else:
        to_sign = content
    if pss:
        pad: asym_padding.AsymmetricPadding = asym_padding.PSS(
            mgf=asym_padding.MGF1(hash_alg), salt_length=hash_alg.digest_size
        )
        signer_info["signature_algorithm"] = algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": digest},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
                        "salt_length": hash_alg.digest_size,
                    }
                ),
            }
        )
    else:
        pad = asym_padding.PKCS1v15()
        signer_info["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    signer_info["signature"] = signer.key.sign(to_sign, pad, hash_alg)
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cms.CertificateChoices({"certificate": _asn1_cert(signer.cert)})],
            "signer_infos": [cms.SignerInfo(signer_info)],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def _verify_with(
    cert: x509.Certificate, signature: bytes, data: bytes, info: cms.SignerInfo, digest: str
) -> None:
    public_key = cert.public_key()
    algorithm = info["signature_algorithm"]
    hash_alg = hash_for(digest)
    if isinstance(public_key, rsa.RSAPublicKey):
        if algorithm.signature_algo == "rsassa_pss":
            params = algorithm["parameters"]
            if params.native is None:
                # RFC 4055 says absent means SHA-1, but pyas2lib/oscrypto omit them while hashing
                # with the signer's digest: accept either reading.
                candidates = [(hash_alg, hash_alg), (hashes.SHA1(), hashes.SHA1())]
            else:
                candidates = [
                    (
                        hash_for(normalize_digest(params["hash_algorithm"]["algorithm"].native) or ""),
                        hash_for(
                            normalize_digest(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
                            or ""
                        ),
                    )
                ]
            for index, (pss_hash, mgf_hash) in enumerate(candidates):
                try:
                    public_key.verify(
                        signature,
                        data,
                        asym_padding.PSS(mgf=asym_padding.MGF1(mgf_hash), salt_length=asym_padding.PSS.AUTO),
                        pss_hash,
                    )
                    return
                except InvalidSignature:
                    if index == len(candidates) - 1:
                        raise
        else:
            public_key.verify(signature, data, asym_padding.PKCS1v15(), hash_alg)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_alg))
    else:
        raise SignatureInvalid(f"unsupported signer key type {type(public_key).__name__}")


def verify_detached(
    signature_der: bytes,
    content: bytes,
    certificates: Sequence[x509.Certificate],
    *,
    at: datetime | None = None,
    allow_expired: bool = False,
) -> Verified:
    """Verify a detached SignedData over ``content`` with one of the configured certificates."""
    info = load_content_info(signature_der)
    if info["content_type"].native != "signed_data":
        raise CmsError("the signature is not a CMS SignedData")
    signed_data = info["content"]
    if not certificates:
        raise SignatureInvalid("no certificate is configured to verify this partner's signatures")
    now = at or datetime.now(UTC)
    problems: list[str] = []
    for signer in signed_data["signer_infos"]:
        digest = normalize_digest(signer["digest_algorithm"]["algorithm"].native or "")
        if digest is None or digest == "md5":
            raise UnsupportedAlgorithm(f"signature digest {signer['digest_algorithm']['algorithm'].native}")
        signature = signer["signature"].native
        attrs = signer["signed_attrs"]
        if attrs.native is not None and len(attrs):
            by_type = {attr["type"].native: attr["values"] for attr in attrs}
            content_type = by_type.get("content_type")
            if content_type is None or content_type[0].native != "data":
                problems.append("signed content type is not id-data")
                continue
            expected = by_type.get("message_digest")
            if expected is None or expected[0].native != digest_bytes(digest, content):
                problems.append("message digest does not match the content")
                continue
            data = _attr_set_der(attrs)
        else:
            data = content
        named = [c for c in certificates if _matches(signer["sid"], c)]
        for cert in named + [c for c in certificates if c not in named]:
            try:
                _verify_with(cert, signature, data, signer, digest)
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


def _unpad(data: bytes, block_bits: int) -> bytes:
    unpadder = padding.PKCS7(block_bits).unpadder()
    return unpadder.update(data) + unpadder.finalize()


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


def _decrypt_content(
    algorithm: cms.EncryptionAlgorithm, cek: bytes, ciphertext: bytes, mac: bytes | None
) -> bytes:
    name = algorithm["algorithm"].native
    if name in ("aes128_gcm", "aes192_gcm", "aes256_gcm"):
        params = algos.CcmParams.load(algorithm["parameters"].dump())
        nonce = params["aes_nonce"].native
        return AESGCM(cek).decrypt(nonce, ciphertext + (mac or b""), None)
    iv = algorithm.encryption_iv
    if name == "tripledes_3key":
        decryptor = Cipher(TripleDES(cek), modes.CBC(iv)).decryptor()
        return _unpad(decryptor.update(ciphertext) + decryptor.finalize(), 64)
    if name in ("aes128_cbc", "aes192_cbc", "aes256_cbc"):
        decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
        return _unpad(decryptor.update(ciphertext) + decryptor.finalize(), 128)
    raise UnsupportedAlgorithm(f"content encryption {name}")


def decrypt(data: bytes, keys: Sequence[KeyPair]) -> bytes:
    """Open an EnvelopedData/AuthEnvelopedData with whichever of our keys it was made for.

    Every recipient info is tried against every key (named ones first); every failure raises
    the same ``DecryptionFailed`` after the same work, so errors reveal nothing (no oracle).
    """
    try:
        info = load_content_info(data)
    except CmsError:
        raise DecryptionFailed() from None
    kind = info["content_type"].native
    if kind == "enveloped_data":
        envelope = info["content"]
        content_info = envelope["encrypted_content_info"]
        mac = None
    elif kind == "authenticated_enveloped_data":
        envelope = info["content"]
        content_info = envelope["auth_encrypted_content_info"]
        mac = envelope["mac"].native
    else:
        raise DecryptionFailed()
    algorithm = content_info["content_encryption_algorithm"]
    if algorithm["algorithm"].native not in (
        "aes128_cbc",
        "aes192_cbc",
        "aes256_cbc",
        "tripledes_3key",
        "aes128_gcm",
        "aes192_gcm",
        "aes256_gcm",
    ):
        raise UnsupportedAlgorithm(f"content encryption {algorithm['algorithm'].native}")
    ciphertext = content_info["encrypted_content"].native or b""
    attempts: list[tuple[cms.KeyTransRecipientInfo, KeyPair]] = []
    for recipient in envelope["recipient_infos"]:
        if recipient.name != "ktri":
            continue
        ktri = recipient.chosen
        named = [k for k in keys if _matches(ktri["rid"], k.cert)]
        attempts.extend((ktri, k) for k in named)
        attempts.extend((ktri, k) for k in keys if k not in named)
    for ktri, pair in attempts:
        try:
            cek = _unwrap_key(ktri, pair.key)
            return _decrypt_content(algorithm, cek, ciphertext, mac)
        except (ValueError, InvalidTag, TypeError, UnsupportedAlgorithm):
            continue
    raise DecryptionFailed()


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


def decompress(data: bytes, *, max_bytes: int | None = None) -> bytes:
    """The content of a CompressedData (zlib), bounded by ``max_bytes`` (zip bombs)."""
    info = load_content_info(data)
    if info["content_type"].native != "compressed_data":
        raise CmsError("not a CMS CompressedData")
    compressed = info["content"]
    if compressed["compression_algorithm"]["algorithm"].dotted != ZLIB_OID:
        raise UnsupportedAlgorithm("compression algorithm")
    raw = compressed["encap_content_info"]["content"].native or b""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, max_bytes or 0)
    except zlib.error as exc:
        raise CmsError(f"compressed content is corrupt: {exc}") from exc
    if max_bytes and inflater.unconsumed_tail:
        raise CmsError(f"decompressed content exceeds {max_bytes} bytes")
    return out
