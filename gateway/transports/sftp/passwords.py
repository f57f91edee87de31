"""Slow password hashes for hosted SFTP accounts (scrypt with a per-account salt)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEFAULT_LOG_N = 15  # N = 32768, r = 8: about 32 MiB and ~0.1 s per check
_R, _P = 8, 1
_SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32
    )


def hash_password(password: str, *, log_n: int = DEFAULT_LOG_N) -> str:
    """``scrypt$<log N>$<r>$<p>$<salt>$<hash>`` for a password, with a fresh random salt."""
    salt = os.urandom(16)
    digest = _scrypt(password, salt, log_n, _R, _P)
    return f"{_SCHEME}${log_n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare; False if malformed)."""
    try:
        scheme, log_n, r, p, salt, digest = encoded.split("$")
        if scheme != _SCHEME:
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(log_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
