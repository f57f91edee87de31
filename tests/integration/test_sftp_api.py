"""``/sftp/host-keys`` and ``/partners/{id}/sftp``: roles, partner isolation, no secrets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest_api import API, ApiKeys, create_partner, sample_profile
from tests.conftest_sftp import PASSWORD, hosted_profile

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL4wWleiK1aOmmePsdp05g/rwGOfzQWgx1Net1UoDx9F partner"


@pytest.fixture
def sftp_api(api_app: FastAPI, api_client: TestClient) -> TestClient:
    """The test API with the SFTP router mounted (until the lead adds it to ROUTER_MODULES)."""
    from gateway.api.app import ROUTER_MODULES
    from gateway.transports.sftp.views import router

    if "gateway.transports.sftp.views" not in ROUTER_MODULES:
        api_app.include_router(router, prefix=API)
    return api_client


def _partners(app: FastAPI) -> None:
    create_partner(app, hosted_profile([ED25519]))
    other = sample_profile(id="globex", name="Globex")
    other["x12"] = {**other["x12"], "interchange_id": {"qualifier": "ZZ", "id": "GLOBEX"}}
    create_partner(app, other)


def test_host_keys_are_shown_to_partners_and_onboarding(sftp_api: TestClient, api_app: FastAPI,
                                                        api_keys: ApiKeys) -> None:
    _partners(api_app)
    partner = api_keys.headers("partner", partner_id="acme-retail")
    answer = sftp_api.get(f"{API}/sftp/host-keys", headers=partner)

    assert answer.status_code == 200
    body = answer.json()
    assert {k["algorithm"] for k in body["items"]} == {"ssh-ed25519", "ssh-rsa"}
    assert all(k["fingerprint"].startswith("SHA256:") for k in body["items"])
    assert "PRIVATE" not in answer.text
    again = sftp_api.get(f"{API}/sftp/host-keys", headers=api_keys.headers("onboarding")).json()
    assert again["items"] == body["items"]  # generated once


def test_host_keys_are_denied_to_the_erp_role(sftp_api: TestClient, api_keys: ApiKeys) -> None:
    answer = sftp_api.get(f"{API}/sftp/host-keys", headers=api_keys.headers("erp"))

    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"


def test_partner_account_state_shows_no_secrets(sftp_api: TestClient, api_app: FastAPI,
                                                api_keys: ApiKeys) -> None:
    _partners(api_app)

    answer = sftp_api.get(f"{API}/partners/acme-retail/sftp", headers=api_keys.headers("auditor"))

    assert answer.status_code == 200
    hosted: dict[str, Any] = answer.json()["hosted"]
    assert hosted["username"] == "acme" and hosted["password_set"] is True
    assert hosted["public_keys"][0]["type"] == "ssh-ed25519"
    assert PASSWORD not in answer.text and "scrypt" not in answer.text


def test_a_partner_key_cannot_read_another_partners_account(sftp_api: TestClient, api_app: FastAPI,
                                                            api_keys: ApiKeys) -> None:
    _partners(api_app)
    globex = api_keys.headers("partner", partner_id="globex")

    assert sftp_api.get(f"{API}/partners/acme-retail/sftp", headers=globex).status_code == 403
    own = sftp_api.get(f"{API}/partners/globex/sftp", headers=globex)
    assert own.status_code == 200 and own.json()["hosted"] is None
    assert own.json()["remote"]["host"] == "sftp.acme.example"


def test_onboarding_unlocks_an_account_and_erp_may_not(sftp_api: TestClient, api_app: FastAPI,
                                                       api_keys: ApiKeys) -> None:
    _partners(api_app)
    sftp_api.get(f"{API}/partners/acme-retail/sftp", headers=api_keys.headers("onboarding"))  # syncs it

    denied = sftp_api.post(f"{API}/partners/acme-retail/sftp/unlock", headers=api_keys.headers("erp"))
    allowed = sftp_api.post(f"{API}/partners/acme-retail/sftp/unlock", headers=api_keys.headers("onboarding"))

    assert denied.status_code == 403
    assert allowed.status_code == 200 and allowed.json()["username"] == "acme"
    missing = sftp_api.post(f"{API}/partners/globex/sftp/unlock", headers=api_keys.headers("onboarding"))
    assert missing.status_code == 404
