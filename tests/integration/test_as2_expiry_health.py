"""AS2 certificates about to expire show up in /readyz warnings and in /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest_api import ApiKeys
from tests.conftest_as2 import make_key_pair, store_our_key


def test_an_expiring_key_pair_warns_in_readyz_and_is_a_metric(
        api_app: FastAPI, api_client: TestClient, api_keys: ApiKeys) -> None:
    key_id = store_our_key(api_app, make_key_pair("DISTCO-SOON", days=5))
    ready = api_client.get("/api/v1/readyz")
    assert ready.status_code == 200
    warnings = ready.json()["warnings"]
    assert [w["id"] for w in warnings] == [key_id]
    metrics = api_client.get("/api/v1/metrics", headers=api_keys.headers("auditor")).text
    line = next(m for m in metrics.splitlines() if m.startswith("edigate_as2_certificate_expiry_days{"))
    assert key_id in line and 3.5 < float(line.rsplit(" ", 1)[1]) <= 5


def test_readyz_has_no_warnings_without_expiring_certificates(api_client: TestClient) -> None:
    assert api_client.get("/api/v1/readyz").json()["warnings"] == []
