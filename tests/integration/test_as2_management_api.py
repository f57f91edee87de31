"""AS2 key pairs (admin only) and partner certificates/options through the API."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from fastapi.testclient import TestClient

from tests.conftest_api import ApiKeys
from tests.conftest_as2 import As2Setup, cert_pem

API = "/api/v1"


@pytest.fixture
def client(as2_app: As2Setup) -> TestClient:
    """An in-process client for the AS2 app."""
    return TestClient(as2_app.app)


def test_admin_generates_lists_and_retires_key_pairs_without_ever_seeing_a_private_key(
    client: TestClient, api_keys: ApiKeys
) -> None:
    admin = api_keys.headers("admin")
    created = client.post(f"{API}/as2/keys", json={"name": "2027", "as2_id": "DISTCO AS2"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["status"] == "active" and "PRIVATE" not in created.text
    listed = client.get(f"{API}/as2/keys", headers=admin).json()["items"]
    assert key["id"] in {item["id"] for item in listed}
    assert all("private" not in field for item in listed for field in item)
    retired = client.post(f"{API}/as2/keys/{key['id']}/status", json={"status": "retired"}, headers=admin)
    assert retired.json()["status"] == "retired"
    again = client.post(f"{API}/as2/keys/{key['id']}/status", json={"status": "active"}, headers=admin)
    assert again.status_code == 409


@pytest.mark.parametrize("role", ["onboarding", "erp", "auditor"])
def test_only_admins_manage_our_key_pairs(client: TestClient, api_keys: ApiKeys, role: str) -> None:
    headers = api_keys.headers(role)
    assert client.get(f"{API}/as2/keys", headers=headers).status_code == 403
    assert (
        client.post(f"{API}/as2/keys", json={"name": "x", "as2_id": "X"}, headers=headers).status_code == 403
    )


def test_onboarding_uploads_pem_and_pkcs12_certificates_and_auditors_read_them(
    client: TestClient, api_keys: ApiKeys, as2_app: As2Setup
) -> None:
    onboarding, auditor = api_keys.headers("onboarding"), api_keys.headers("auditor")
    url = f"{API}/partners/{as2_app.partner_id}/as2/certificates"
    pem = client.post(url, content=cert_pem(as2_app.certs.partner), headers=onboarding)
    assert pem.status_code == 201, pem.text
    p12 = pkcs12.serialize_key_and_certificates(
        b"next", as2_app.certs.stranger.key, as2_app.certs.stranger.cert, None, BestAvailableEncryption(b"pw")
    )
    uploaded = client.post(
        url,
        json={"certificate": base64.b64encode(p12).decode(), "password": "pw", "usage": "verify"},
        headers=onboarding,
    )
    assert uploaded.status_code == 201, uploaded.text
    items = client.get(url, headers=auditor).json()["items"]
    assert len(items) == 2
    assert client.post(url, content=b"not a cert", headers=onboarding).status_code == 422
    assert client.post(url, content=cert_pem(as2_app.certs.partner), headers=auditor).status_code == 403
    retired = client.delete(f"{url}/{uploaded.json()['id']}", headers=onboarding)
    assert retired.json()["status"] == "retired"


def test_partner_keys_and_erp_keys_cannot_touch_partner_certificates(
    client: TestClient, api_keys: ApiKeys, as2_app: As2Setup
) -> None:
    url = f"{API}/partners/{as2_app.partner_id}/as2/certificates"
    assert client.get(url, headers=api_keys.headers("erp")).status_code == 403
    partner = api_keys.headers("partner", partner_id=as2_app.partner_id)
    assert client.get(url, headers=partner).status_code == 403
    assert (
        client.get(f"{API}/partners/nobody/as2/certificates", headers=api_keys.headers("admin")).status_code
        == 404
    )


def test_partner_options_round_trip_and_reject_unknown_switches(
    client: TestClient, api_keys: ApiKeys, as2_app: As2Setup
) -> None:
    url = f"{API}/partners/{as2_app.partner_id}/as2/options"
    headers = api_keys.headers("onboarding")
    assert client.get(url, headers=headers).json()["legacy_micalg"] is False
    saved = client.put(
        url, json={"legacy_micalg": True, "content_transfer_encoding": "base64"}, headers=headers
    )
    assert saved.status_code == 200 and client.get(url, headers=headers).json()["legacy_micalg"] is True
    assert client.put(url, json={"nonsense": 1}, headers=headers).status_code == 422
    assert client.put(url, json={}, headers=api_keys.headers("auditor")).status_code == 403
