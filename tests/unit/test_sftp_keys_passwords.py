"""Slow password hashes, accepted public key types and sizes, and host key pinning."""

from __future__ import annotations

import base64

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gateway.transports.sftp.client import host_key_matches
from gateway.transports.sftp.keys import KeyRejected, fingerprint, parse_public_key, public_line
from gateway.transports.sftp.passwords import hash_password, verify_password


def test_a_password_hash_verifies_only_the_right_password_and_is_salted() -> None:
    first, second = hash_password("s3cret", log_n=10), hash_password("s3cret", log_n=10)
    assert first != second and first.startswith("scrypt$10$")
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("S3cret", first)


@pytest.mark.parametrize("stored", ["", "scrypt$", "bcrypt$x", "scrypt$10$8$1$!!$??"])
def test_a_malformed_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything", stored)


def _openssh_line(private: object) -> str:
    public = private.public_key()  # type: ignore[attr-defined]
    raw: bytes = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def test_ed25519_and_rsa_2048_keys_are_accepted() -> None:
    for private in (ed25519.Ed25519PrivateKey.generate(),
                    rsa.generate_private_key(public_exponent=65537, key_size=2048)):
        line = _openssh_line(private) + " comment"
        key = parse_public_key(line)
        assert public_line(key) == " ".join(line.split()[:2])


def test_rsa_keys_under_2048_bits_and_unknown_types_are_rejected() -> None:
    weak = _openssh_line(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(KeyRejected, match="2048"):
        parse_public_key(weak)
    with pytest.raises(KeyRejected):
        parse_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP")
    with pytest.raises(KeyRejected):
        parse_public_key("ssh-ed25519 not-base64!")


def test_a_pinned_host_key_matches_by_line_or_fingerprint_only_for_that_key() -> None:
    key = paramiko.Ed25519Key.from_private_key(__import__("io").StringIO(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()))
    other = parse_public_key(_openssh_line(ed25519.Ed25519PrivateKey.generate()))
    assert host_key_matches(public_line(key), key)
    assert host_key_matches(fingerprint(key), key)
    assert not host_key_matches(public_line(other), key)
    assert not host_key_matches(fingerprint(other), key)
    assert not host_key_matches("ssh-rsa " + base64.b64encode(key.asbytes()).decode(), key)
