"""Certificates: parse PEM/DER/PKCS#12 uploads, our key pairs, and partners' certificates.

Service functions take a session and never commit. Private keys are stored encrypted with the
SecretBox (context ``as2-key:<id>``) and are never returned. Our key pairs are generated,
listed, activated (several may be active: every active key is tried for decryption; the
newest active key signs) and retired. Partner certificates are uploaded (PEM or PKCS#12) and
retired; several active ones are kept during a rotation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.secrets import SecretBox
from gateway.store.core import run, table_of
from gateway.store.events import append_event
from gateway.store.types import utcnow
from gateway.transports.as2.cms import KeyPair
from gateway.transports.as2.models import As2KeyPair, As2PartnerCertificate

KEY_STATUSES = ("active", "inactive", "retired")
CERT_USAGES = ("verify", "encrypt", "both")
EXPIRY_WARNING_DAYS = 30


class CertificateError(ValueError):
    """An upload is not a usable certificate (or key)."""


class NotFound(LookupError):
    """No such key pair or certificate."""


@dataclass(frozen=True)
class CertificateInfo:
    """What we show about a certificate."""

    subject: str
    serial_number: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime


def describe(cert: x509.Certificate) -> CertificateInfo:
    """Subject, serial, SHA-256 fingerprint and validity of a certificate."""
    return CertificateInfo(
        subject=cert.subject.rfc4514_string()[:500],
        serial_number=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def load_certificate(data: bytes, *, password: bytes | None = None) -> x509.Certificate:
    """A certificate from PEM, DER or PKCS#12 bytes (``CertificateError`` otherwise)."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(text)
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError:
            _, cert, _ = pkcs12.load_key_and_certificates(data, password)
            if cert is None:
                raise CertificateError("the PKCS#12 file holds no certificate") from None
            return cert
    except CertificateError:
        raise
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM, DER or PKCS#12 certificate: {exc}") from exc


def cert_pem(cert: x509.Certificate) -> str:
    """The certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def self_signed(
    common_name: str, *, days: int = 730, key_size: int = 2048
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A new RSA key and a self-signed certificate (what AS2 partners usually exchange)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


# --- our key pairs --------------------------------------------------------------------------------


def _key_context(key_id: uuid.UUID) -> str:
    return f"as2-key:{key_id}"


def add_key_pair(
    session: Session,
    *,
    name: str,
    as2_id: str,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    box: SecretBox,
    actor: str,
    activate: bool = True,
) -> As2KeyPair:
    """Store a key pair (private key encrypted); active at once unless ``activate`` is False."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, spki) != key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise CertificateError("the private key does not belong to the certificate")
    info = describe(cert)
    key_id = uuid.uuid4()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = utcnow()
    row = As2KeyPair(
        id=key_id,
        name=name,
        as2_id=as2_id,
        status="active" if activate else "inactive",
        certificate_pem=cert_pem(cert),
        private_key_ciphertext=box.encrypt(pem, context=_key_context(key_id)),
        fingerprint_sha256=info.fingerprint_sha256,
        subject=info.subject,
        serial_number=info.serial_number,
        not_before=info.not_before,
        not_after=info.not_after,
        created_at=now,
        activated_at=now if activate else None,
    )
    session.add(row)
    session.flush()
    append_event(
        session,
        event_type="as2.key_pair.added",
        actor=actor,
        subject_type="as2_key_pair",
        subject_id=key_id,
        data={"name": name, "as2_id": as2_id, "fingerprint": info.fingerprint_sha256, "status": row.status},
    )
    return row


def generate_key_pair(
    session: Session,
    *,
    name: str,
    as2_id: str,
    box: SecretBox,
    actor: str,
    days: int = 730,
    key_size: int = 2048,
    activate: bool = True,
) -> As2KeyPair:
    """Generate, store and (by default) activate a new RSA key pair for ``as2_id``."""
    key, cert = self_signed(as2_id, days=days, key_size=key_size)
    return add_key_pair(
        session, name=name, as2_id=as2_id, key=key, cert=cert, box=box, actor=actor, activate=activate
    )


def list_key_pairs(session: Session, *, include_retired: bool = True) -> list[As2KeyPair]:
    """Our key pairs, newest first."""
    query = select(As2KeyPair).order_by(As2KeyPair.created_at.desc(), As2KeyPair.id)
    if not include_retired:
        query = query.where(As2KeyPair.status != "retired")
    return list(session.scalars(query))


def get_key_pair(session: Session, key_id: uuid.UUID) -> As2KeyPair:
    """One key pair, or ``NotFound``."""
    row = session.get(As2KeyPair, key_id)
    if row is None:
        raise NotFound(f"no AS2 key pair {key_id}")
    return row


def set_key_status(session: Session, key_id: uuid.UUID, status: str, *, actor: str) -> As2KeyPair:
    """Activate, deactivate or retire a key pair (retired is final)."""
    if status not in KEY_STATUSES:
        raise ValueError(f"status must be one of {', '.join(KEY_STATUSES)}")
    row = get_key_pair(session, key_id)
    if row.status == "retired" and status != "retired":
        raise CertificateError("a retired key pair cannot be reactivated")
    now = utcnow()
    row.status = status
    if status == "active":
        row.activated_at = now
    if status == "retired":
        row.retired_at = now
    append_event(
        session,
        event_type=f"as2.key_pair.{status}",
        actor=actor,
        subject_type="as2_key_pair",
        subject_id=row.id,
        data={"fingerprint": row.fingerprint_sha256},
    )
    return row


def usable_key_pairs(session: Session, box: SecretBox) -> list[KeyPair]:
    """Our active key pairs, decrypted, newest activation first (the first one signs)."""
    listing = key_pair_listing(session)
    active = [row[0] for row in listing if row[2] == "active"]
    loaded = load_key_pairs(session, box, active)
    return [loaded[key_id] for key_id in active if key_id in loaded]


_KEY_PAIRS = table_of(As2KeyPair)
KEY_PAIR_LISTING = (  # runs for every message received: built once, run with gateway.store.core.run
    select(_KEY_PAIRS.c.id, _KEY_PAIRS.c.as2_id, _KEY_PAIRS.c.status)
    .where(_KEY_PAIRS.c.status != "retired")
    .order_by(_KEY_PAIRS.c.activated_at.desc(), _KEY_PAIRS.c.created_at.desc())
)


def key_pair_listing(session: Session) -> tuple[tuple[uuid.UUID, str, str], ...]:
    """``(id, as2_id, status)`` of every non-retired key pair, in signing order (newest activation first).

    A key pair's key and certificate never change, so this listing is all a cache of parsed keys
    has to compare to notice an added, activated, deactivated or retired key.
    """
    return tuple((row.id, row.as2_id, row.status) for row in run(session, KEY_PAIR_LISTING))


def load_key_pairs(
    session: Session, box: SecretBox, key_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, KeyPair]:
    """The named key pairs, private keys decrypted and parsed (RSA only)."""
    if not key_ids:
        return {}
    rows = session.execute(
        select(
            As2KeyPair.id, As2KeyPair.as2_id, As2KeyPair.certificate_pem, As2KeyPair.private_key_ciphertext
        ).where(As2KeyPair.id.in_(list(key_ids)))
    )
    pairs: dict[uuid.UUID, KeyPair] = {}
    for key_id, as2_id, certificate_pem, ciphertext in rows:
        pem = box.decrypt(ciphertext, context=_key_context(key_id))
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            cert = x509.load_pem_x509_certificate(certificate_pem.encode())
            pairs[key_id] = KeyPair(key, cert, str(key_id), as2_id)
    return pairs


def our_as2_ids(session: Session) -> set[str]:
    """The AS2 names our non-retired key pairs answer to."""
    return set(session.scalars(select(As2KeyPair.as2_id).where(As2KeyPair.status != "retired")))


# --- partner certificates -----------------------------------------------------------------------


def add_partner_certificate(
    session: Session, partner_id: str, cert: x509.Certificate, *, usage: str = "both", actor: str
) -> As2PartnerCertificate:
    """Store a partner certificate (idempotent on its fingerprint: re-activates a retired one)."""
    if usage not in CERT_USAGES:
        raise ValueError(f"usage must be one of {', '.join(CERT_USAGES)}")
    info = describe(cert)
    row = session.scalars(
        select(As2PartnerCertificate).where(
            As2PartnerCertificate.partner_id == partner_id,
            As2PartnerCertificate.fingerprint_sha256 == info.fingerprint_sha256,
        )
    ).first()
    if row is None:
        row = As2PartnerCertificate(
            id=uuid.uuid4(),
            partner_id=partner_id,
            usage=usage,
            status="active",
            certificate_pem=cert_pem(cert),
            fingerprint_sha256=info.fingerprint_sha256,
            subject=info.subject,
            serial_number=info.serial_number,
            not_before=info.not_before,
            not_after=info.not_after,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
    else:
        row.usage, row.status, row.retired_at = usage, "active", None
    append_event(
        session,
        event_type="as2.certificate.added",
        actor=actor,
        partner_id=partner_id,
        subject_type="as2_partner_certificate",
        subject_id=row.id,
        data={"fingerprint": info.fingerprint_sha256, "usage": usage},
    )
    return row


def list_partner_certificates(session: Session, partner_id: str) -> list[As2PartnerCertificate]:
    """A partner's certificates, newest first."""
    return list(
        session.scalars(
            select(As2PartnerCertificate)
            .where(As2PartnerCertificate.partner_id == partner_id)
            .order_by(As2PartnerCertificate.created_at.desc(), As2PartnerCertificate.id)
        )
    )


def retire_partner_certificate(
    session: Session, partner_id: str, cert_id: uuid.UUID, *, actor: str
) -> As2PartnerCertificate:
    """Stop using one of a partner's certificates (kept for the record)."""
    row = session.get(As2PartnerCertificate, cert_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound(f"no certificate {cert_id} for partner {partner_id}")
    row.status, row.retired_at = "retired", utcnow()
    append_event(
        session,
        event_type="as2.certificate.retired",
        actor=actor,
        partner_id=partner_id,
        subject_type="as2_partner_certificate",
        subject_id=row.id,
        data={"fingerprint": row.fingerprint_sha256},
    )
    return row


def partner_certificates(session: Session, partner_id: str, *, usage: str) -> list[x509.Certificate]:
    """The partner's active certificates for ``verify`` or ``encrypt``, newest first."""
    rows = session.scalars(
        select(As2PartnerCertificate)
        .where(
            As2PartnerCertificate.partner_id == partner_id,
            As2PartnerCertificate.status == "active",
            As2PartnerCertificate.usage.in_([usage, "both"]),
        )
        .order_by(As2PartnerCertificate.created_at.desc())
    )
    return [x509.load_pem_x509_certificate(row.certificate_pem.encode()) for row in rows]


@dataclass(frozen=True)
class ExpiringCertificate:
    """A certificate that expires soon (or has expired): for /readyz and /metrics."""

    kind: str  # key_pair | partner_certificate
    ident: str
    partner_id: str | None
    not_after: datetime
    days_left: float


def expiring_certificates(
    session: Session, *, within_days: int = EXPIRY_WARNING_DAYS, now: datetime | None = None
) -> list[ExpiringCertificate]:
    """Active key pairs and partner certificates expiring within ``within_days``."""
    now = now or utcnow()
    limit = now + timedelta(days=within_days)
    found: list[ExpiringCertificate] = []
    for key in session.scalars(
        select(As2KeyPair).where(As2KeyPair.status == "active", As2KeyPair.not_after <= limit)
    ):
        found.append(
            ExpiringCertificate(
                "key_pair", str(key.id), None, key.not_after, (key.not_after - now).total_seconds() / 86400
            )
        )
    for cert in session.scalars(
        select(As2PartnerCertificate).where(
            As2PartnerCertificate.status == "active", As2PartnerCertificate.not_after <= limit
        )
    ):
        found.append(
            ExpiringCertificate(
                "partner_certificate",
                str(cert.id),
                cert.partner_id,
                cert.not_after,
                (cert.not_after - now).total_seconds() / 86400,
            )
        )
    return found
