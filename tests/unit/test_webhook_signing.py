"""Standard Webhooks signing and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta

import pytest

from gateway.deliveries.backoff import next_attempt_at, retry_delay
from gateway.deliveries.signing import SignatureError, generate_secret, sign, verify, webhook_headers

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_signature_is_v1_base64_hmac_sha256_of_id_timestamp_body() -> None:
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert sign(SECRET, "msg_1", 1700000000, b"{}") == "v1," + expected


def test_known_vector_from_the_standard_webhooks_spec() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_headers_verify_and_a_changed_body_does_not() -> None:
    headers = webhook_headers([SECRET], "msg_2", 1700000000, b'{"a":1}')
    verify(SECRET, headers, b'{"a":1}', now=1700000010)
    with pytest.raises(SignatureError):
        verify(SECRET, headers, b'{"a":2}', now=1700000010)


def test_stale_timestamps_and_other_secrets_are_rejected() -> None:
    headers = webhook_headers([SECRET], "msg_3", 1700000000, b"{}")
    with pytest.raises(SignatureError):
        verify(SECRET, headers, b"{}", now=1700000000 + 3600)
    with pytest.raises(SignatureError):
        verify(generate_secret(), headers, b"{}", now=1700000000)


def test_malformed_secret_is_refused() -> None:
    with pytest.raises(SignatureError):
        sign("whsec_not base64!", "msg", 1, b"")


def test_generated_secret_holds_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert secret != generate_secret()


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [retry_delay(n, base=5, cap=3600, rng=rng) for n in range(1, 15)]
    assert 4 <= delays[0] <= 6 and 8 <= delays[1] <= 12
    assert max(delays) <= 3600 and delays[-1] >= 3600 * 0.8


def test_no_retry_is_scheduled_past_the_give_up_time() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_attempt_at(now, 1, give_up_at=now + timedelta(hours=1), base=5, cap=60) is not None
    assert next_attempt_at(now, 30, give_up_at=now + timedelta(seconds=10), base=5, cap=60) is None
