"""The API's rate limits: a key over its request rate and an address over its failed logins get 429."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.settings import Settings
from tests.conftest_api import API, ApiKeys, settings_with_key


@pytest.fixture
def api_settings(embedded_settings: Settings) -> Settings:
    """Tiny limits: three requests at once per key, then one every 100 s; two failed logins."""
    return settings_with_key(
        embedded_settings.data_dir, api_rate_per_second=0.01, api_rate_burst=3, api_failed_logins_per_minute=2
    )


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_go_on(
    api_client: TestClient, api_keys: ApiKeys
) -> None:
    erp, auditor = api_keys.headers("erp"), api_keys.headers("auditor")
    statuses = [api_client.get(f"{API}/schemas", headers=erp).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api_client.get(f"{API}/schemas", headers=erp)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    assert api_client.get(f"{API}/schemas", headers=auditor).status_code == 200


def test_an_address_with_too_many_failed_logins_is_refused_even_with_a_good_key(
    api_client: TestClient, api_keys: ApiKeys
) -> None:
    good = api_keys.headers("auditor")
    bad = {"Authorization": "Bearer not-a-key"}
    assert [api_client.get(f"{API}/schemas", headers=bad).status_code for _ in range(2)] == [401, 401]
    locked = api_client.get(f"{API}/schemas", headers=good)
    assert locked.status_code == 429
    assert "failed logins" in locked.json()["error"]["message"]
    assert int(locked.headers["Retry-After"]) >= 1
