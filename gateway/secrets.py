"""Encryption at rest for partner passwords, private keys and webhook secrets.

Scheme: AES-256-GCM. The 256-bit data key is derived from the configured ``secret_key`` with
HKDF-SHA256 (info ``edigate/secrets-at-rest/v1``), so any sufficiently random string works as
key material. Each value gets a fresh 96-bit nonce and is bound to its purpose through GCM's
associated data (``context``, e.g. ``"webhook:erp-main"``): a ciphertext copied into another
row or column does not decrypt.

Token format: ``v1.<key id>.<base64url(nonce || ciphertext || tag)>`` where the key id is the
first 8 hex digits of SHA-256 over the derived key; it names the key, it does not reveal it.

Rotation: set the new key as ``EDIGATE_SECRET_KEY`` and list the old one in
``EDIGATE_PREVIOUS_SECRET_KEYS`` (a JSON list). Tokens made with any listed key decrypt;
``SecretBox.rotate`` re-encrypts a token under the current key. Once every stored token has
been rotated (``needs_rotation`` is false for all), drop the old key from the list.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from gateway.settings import Settings

TOKEN_VERSION = "v1"
_HKDF_INFO = b"edigate/secrets-at-rest/v1"
_NONCE_BYTES = 12


class SecretError(Exception):
    """A secret could not be encrypted or decrypted."""


class UnknownKeyError(SecretError):
    """The token was made with a key that is not configured (current or previous)."""


class DecryptionError(SecretError):
    """The token is malformed, was tampered with, or belongs to another context."""


@dataclass(frozen=True)
class _DataKey:
    key_id: str
    aead: AESGCM


def _derive(material: SecretStr) -> _DataKey:
    raw = material.get_secret_value().encode("utf-8")
    if len(raw) < 16:
        raise SecretError("secret key material must be at least 16 characters")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
    return _DataKey(key_id=hashlib.sha256(key).hexdigest()[:8], aead=AESGCM(key))


class SecretBox:
    """Encrypts with the current key; decrypts with the current or any previous key."""

    def __init__(self, current: SecretStr, previous: Sequence[SecretStr] = ()) -> None:
        self._current = _derive(current)
        self._keys = {self._current.key_id: self._current}
        for material in previous:
            data_key = _derive(material)
            self._keys.setdefault(data_key.key_id, data_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """A box keyed by the settings' secret key and previous keys."""
        return cls(settings.resolve_secret_key(), settings.previous_secret_keys)

    @property
    def key_id(self) -> str:
        """The id of the key new tokens are made with."""
        return self._current.key_id

    def encrypt(self, plaintext: str | bytes, *, context: str) -> str:
        """A token holding ``plaintext``, decryptable only with the same ``context``."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.aead.encrypt(nonce, data, context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{TOKEN_VERSION}.{self._current.key_id}.{body}"

    def decrypt(self, token: str, *, context: str) -> bytes:
        """The plaintext bytes of ``token``; raises ``SecretError`` if it cannot be opened."""
        data_key, blob = self._parse(token)
        try:
            return data_key.aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError("secret token failed authentication") from None

    def decrypt_text(self, token: str, *, context: str) -> str:
        """The plaintext of ``token`` decoded as UTF-8."""
        return self.decrypt(token, context=context).decode("utf-8")

    def needs_rotation(self, token: str) -> bool:
        """True when ``token`` was not made with the current key."""
        return self._parse(token)[0] is not self._current

    def rotate(self, token: str, *, context: str) -> str:
        """``token`` re-encrypted under the current key (unchanged if it already is)."""
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, context=context), context=context)

    def _parse(self, token: str) -> tuple[_DataKey, bytes]:
        try:
            version, key_id, body = token.split(".")
        except ValueError:
            raise DecryptionError("not an edigate secret token") from None
        if version != TOKEN_VERSION:
            raise DecryptionError(f"unsupported secret token version {version!r}")
        data_key = self._keys.get(key_id)
        if data_key is None:
            raise UnknownKeyError(f"secret token was made with unknown key {key_id}")
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            raise DecryptionError("secret token body is not base64url") from None
        if len(blob) < _NONCE_BYTES + 16:
            raise DecryptionError("secret token is truncated")
        return data_key, blob
