"""Algorithm names as AS2 peers spell them, and the hash objects behind them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes

# canonical name -> (hashlib name, RFC 5751 spelling, legacy spelling)
_DIGESTS: dict[str, tuple[str, str, str]] = {
    "sha1": ("sha1", "sha-1", "sha1"),
    "sha224": ("sha224", "sha-224", "sha224"),
    "sha256": ("sha256", "sha-256", "sha256"),
    "sha384": ("sha384", "sha-384", "sha384"),
    "sha512": ("sha512", "sha-512", "sha512"),
    "md5": ("md5", "md5", "md5"),
}
# Digests we accept inbound for MICs and signatures (rfc4130bis Appendix B: SHA-1 legacy inbound).
SUPPORTED_DIGESTS = ("sha256", "sha384", "sha512", "sha224", "sha1")
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "md5": hashes.MD5,
}


class UnsupportedAlgorithm(ValueError):
    """An algorithm name we do not know or will not use."""


def normalize_digest(name: str) -> str | None:
    """``sha-256``, ``SHA256``, ``sha_256``, ``rsa-sha256`` → ``sha256``; None when unknown."""
    key = re.sub(r"[\s_\-]", "", name.strip().strip('"').lower())
    if key.startswith("rsa"):
        key = key[3:]
    return key if key in _DIGESTS else None


def micalg_name(digest: str, *, legacy: bool = False) -> str:
    """The spelling to emit: RFC 5751 ``sha-256`` by default, ``sha256`` for legacy partners."""
    names = _DIGESTS[digest]
    return names[2] if legacy else names[1]


def hash_for(digest: str) -> hashes.HashAlgorithm:
    """A ``cryptography`` hash instance for a canonical digest name."""
    try:
        return _HASHES[digest]()
    except KeyError as exc:
        raise UnsupportedAlgorithm(digest) from exc


def digest_bytes(digest: str, data: bytes | Iterable[bytes]) -> bytes:
    """The raw digest of ``data`` (bytes or chunks)."""
    hasher = hashlib.new(_DIGESTS[digest][0])
    if isinstance(data, bytes):
        hasher.update(data)
    else:
        for chunk in data:
            hasher.update(chunk)
    return hasher.digest()


def choose_mic_digest(requested: Iterable[str]) -> str | None:
    """The first requested algorithm we support (rfc4130bis), not the last; None if none is."""
    for name in requested:
        digest = normalize_digest(name)
        if digest in SUPPORTED_DIGESTS:
            return digest
    return None


def same_mic(a: str, b: str) -> bool:
    """Two ``base64, alg`` MIC values match: digests exactly, algorithms case/dash-insensitively."""
    value_a, _, alg_a = a.partition(",")
    value_b, _, alg_b = b.partition(",")
    return value_a.strip() == value_b.strip() and normalize_digest(alg_a) == normalize_digest(alg_b)
