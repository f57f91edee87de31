"""SSH keys: our server's host keys (made once, kept encrypted in the database) and partners'
public keys (accepted types and sizes, fingerprints)."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.models import SftpHostKey

HOST_KEY_ALGORITHMS = ("ssh-ed25519", "ssh-rsa")
RSA_HOST_KEY_BITS = 3072
MIN_RSA_BITS = 2048
ACCEPTED_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


class KeyRejected(ValueError):
    """A public or private key we do not accept (type, size or syntax)."""


@dataclass(frozen=True)
class HostKeyInfo:
    """A host key's public line and SHA-256 fingerprint (what partners pin)."""

    algorithm: str
    public_key: str
    fingerprint: str


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of a key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_line(key: paramiko.PKey) -> str:
    """``<type> <base64>`` as in authorized_keys."""
    return f"{key.get_name()} {key.get_base64()}"


def parse_public_key(line: str) -> paramiko.PKey:
    """A partner's public key from an authorized_keys line; ``KeyRejected`` if not acceptable."""
    fields = line.strip().split()
    if len(fields) < 2:
        raise KeyRejected("a public key is '<type> <base64> [comment]'")
    key_type, blob = fields[0], fields[1]
    if key_type not in ACCEPTED_KEY_TYPES:
        raise KeyRejected(f"key type {key_type} is not accepted (use ed25519, ECDSA or RSA >= 2048)")
    try:
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob, validate=True))
    except Exception as exc:
        raise KeyRejected(f"unreadable {key_type} key: {exc}") from exc
    if key.get_name() != key_type:
        raise KeyRejected(f"key data is {key.get_name()}, not {key_type}")
    if key_type == "ssh-rsa" and key.get_bits() < MIN_RSA_BITS:
        raise KeyRejected(f"RSA keys need at least {MIN_RSA_BITS} bits, this one has {key.get_bits()}")
    return key


def load_private_key(text: str) -> paramiko.PKey:
    """A private key from OpenSSH or PEM text (ed25519, ECDSA or RSA)."""
    problems: list[str] = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            key: paramiko.PKey = cls.from_private_key(io.StringIO(text))
            return key
        except Exception as exc:  # each class rejects the others' formats
            problems.append(f"{cls.__name__}: {exc}")
    raise KeyRejected("unreadable private key (" + "; ".join(problems) + ")")


def _generate(algorithm: str) -> str:
    if algorithm == "ssh-ed25519":
        return ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode("ascii")
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_HOST_KEY_BITS)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def _context(algorithm: str) -> str:
    return f"sftp-host-key:{algorithm}"


def ensure_host_keys(db: Database, box: SecretBox) -> list[paramiko.PKey]:
    """Our host keys, generated and stored (encrypted) on first use; every process shares them."""
    keys: list[paramiko.PKey] = []
    for algorithm in HOST_KEY_ALGORITHMS:
        with db.unit_of_work(read_only=True) as session:
            row = session.get(SftpHostKey, algorithm)
            token = row.private_key if row is not None else None
        if token is None:
            pem = _generate(algorithm)
            key = load_private_key(pem)
            try:
                with db.unit_of_work() as session:
                    session.add(SftpHostKey(
                        algorithm=algorithm,
                        private_key=box.encrypt(pem, context=_context(algorithm)),
                        public_key=public_line(key),
                        fingerprint=fingerprint(key),
                    ))
            except IntegrityError:  # another process stored one first: use that
                with db.unit_of_work(read_only=True) as session:
                    stored = session.get(SftpHostKey, algorithm)
                    assert stored is not None
                    token = stored.private_key
        if token is not None:
            key = load_private_key(box.decrypt_text(token, context=_context(algorithm)))
        keys.append(key)
    return keys


def host_key_infos(session: Session) -> list[HostKeyInfo]:
    """The public halves and fingerprints of our stored host keys."""
    rows = session.scalars(select(SftpHostKey).order_by(SftpHostKey.algorithm))
    return [HostKeyInfo(row.algorithm, row.public_key, row.fingerprint) for row in rows]
