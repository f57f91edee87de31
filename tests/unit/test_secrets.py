"""Encryption at rest: round trips, binding to a context, tamper detection, key rotation."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from gateway.secrets import DecryptionError, SecretBox, SecretError, UnknownKeyError

OLD = SecretStr("old-key-material-0123456789")
NEW = SecretStr("new-key-material-0123456789")


def test_encrypted_secret_decrypts_to_the_plaintext() -> None:
    box = SecretBox(NEW)
    token = box.encrypt("s3cr3t password", context="partner:acme:sftp_password")
    assert "s3cr3t" not in token
    assert box.decrypt_text(token, context="partner:acme:sftp_password") == "s3cr3t password"


def test_same_plaintext_encrypts_differently_each_time() -> None:
    box = SecretBox(NEW)
    assert box.encrypt("x", context="c") != box.encrypt("x", context="c")


def test_token_does_not_decrypt_under_another_context() -> None:
    box = SecretBox(NEW)
    token = box.encrypt("whsec_abc", context="webhook:erp-main")
    with pytest.raises(DecryptionError):
        box.decrypt(token, context="webhook:other")


def test_tampered_token_is_rejected() -> None:
    box = SecretBox(NEW)
    token = box.encrypt("private key", context="c")
    body = token.rsplit(".", 1)[1]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DecryptionError):
        box.decrypt(token.rsplit(".", 1)[0] + "." + flipped, context="c")


def test_token_from_an_unknown_key_is_rejected() -> None:
    token = SecretBox(OLD).encrypt("x", context="c")
    with pytest.raises(UnknownKeyError):
        SecretBox(NEW).decrypt(token, context="c")


def test_previous_key_still_decrypts_and_rotation_moves_to_the_current_key() -> None:
    token = SecretBox(OLD).encrypt("x", context="c")
    box = SecretBox(NEW, previous=[OLD])
    assert box.decrypt_text(token, context="c") == "x"
    assert box.needs_rotation(token)
    rotated = box.rotate(token, context="c")
    assert not box.needs_rotation(rotated)
    assert rotated.split(".")[1] == box.key_id
    assert SecretBox(NEW).decrypt_text(rotated, context="c") == "x"


def test_garbage_is_not_a_token() -> None:
    with pytest.raises(DecryptionError):
        SecretBox(NEW).decrypt("not-a-token", context="c")


def test_short_key_material_is_refused() -> None:
    with pytest.raises(SecretError):
        SecretBox(SecretStr("short"))
