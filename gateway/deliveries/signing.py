"""Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``.

The key is the base64-decoded part of a ``whsec_…`` secret. Receivers compare against every
space-separated signature in the header (keys can rotate) and reject stale timestamps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A secret is malformed or a signature does not verify."""


def generate_secret() -> str:
    """A new ``whsec_`` secret holding 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (base64 after the prefix)."""
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise SignatureError("webhook secret is empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def previous_secret_signs(ciphertext: str | None, until: datetime | None, now: datetime) -> bool:
    """Whether an endpoint's rotated-out secret still signs beside the current one (its overlap runs)."""
    return bool(ciphertext) and until is not None and until > now


def webhook_headers(signing_secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes
                    ) -> dict[str, str]:
    """The three Standard Webhooks headers plus the JSON content type; a signature per secret
    (the current one first, then one still in its rotation overlap), space-separated."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, webhook_id, timestamp, body) for key in signing_secrets),
    }


def verify(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a received webhook as an ERP would; raises ``SignatureError`` when it fails."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook headers") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook timestamp is outside the tolerance")
    expected = sign(secret, webhook_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no webhook signature matches")
