"""Every endpoint of the partner, webhook, schema and metrics routers admits exactly its roles
(admin always), answers 401 without a key, and partner keys reach none of them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest_api import API, ApiKeys, create_partner, sample_profile

ROLES = ("admin", "onboarding", "erp", "auditor", "partner")
PARTNER = f"{API}/partners/acme-retail"
WEBHOOK = f"{API}/webhooks/{uuid.UUID(int=1)}"
SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()

# (method, path, body, roles allowed besides admin)
ENDPOINTS: list[tuple[str, str, object, set[str]]] = [
    ("POST", f"{API}/partners", sample_profile(id="new-one"), {"onboarding"}),
    ("GET", f"{API}/partners", None, {"onboarding", "auditor"}),
    ("GET", PARTNER, None, {"onboarding", "auditor"}),
    ("PUT", PARTNER, sample_profile(), {"onboarding"}),
    ("PATCH", PARTNER, {"name": "x"}, {"onboarding"}),
    ("DELETE", PARTNER, None, {"onboarding"}),
    ("GET", f"{PARTNER}/versions", None, {"onboarding", "auditor"}),
    ("GET", f"{PARTNER}/versions/1", None, {"onboarding", "auditor"}),
    ("POST", f"{PARTNER}/test", SAMPLE, {"onboarding"}),
    ("POST", f"{PARTNER}/keys", {"name": "k"}, set()),
    ("GET", f"{PARTNER}/keys", None, set()),
    ("DELETE", f"{PARTNER}/keys/{uuid.UUID(int=2)}", None, set()),
    ("GET", f"{API}/schemas", None, {"onboarding", "erp", "auditor"}),
    ("GET", f"{API}/schemas/purchase_order", None, {"onboarding", "erp", "auditor"}),
    ("POST", f"{API}/webhooks", {"url": "https://erp.example/h", "events": ["*"]}, {"erp"}),
    ("GET", f"{API}/webhooks", None, {"erp"}),
    ("GET", WEBHOOK, None, {"erp"}),
    ("PATCH", WEBHOOK, {"enabled": False}, {"erp"}),
    ("DELETE", WEBHOOK, None, {"erp"}),
    ("GET", f"{API}/metrics", None, {"auditor"}),
]


def _call(client: TestClient, method: str, path: str, body: object, headers: dict[str, str]) -> int:
    if isinstance(body, bytes):
        answer = client.request(method, path, content=body, headers=headers)
    else:
        answer = client.request(method, path, json=body, headers=headers)
    status: int = answer.status_code
    return status


@pytest.fixture
def keyed(api_app: FastAPI, api_keys: ApiKeys) -> dict[str, dict[str, str]]:
    partner_id = create_partner(api_app)
    return {role: api_keys.headers(role, partner_id=partner_id if role == "partner" else None)
            for role in ROLES}


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS,
                         ids=[f"{m} {p.removeprefix(API)}" for m, p, _, _ in ENDPOINTS])
def test_endpoint_admits_its_roles_and_refuses_the_others(
        api_client: TestClient, keyed: dict[str, dict[str, str]],
        method: str, path: str, body: object, allowed: set[str]) -> None:
    # Refused roles first: an allowed DELETE would revoke the partner's key.
    for role in sorted(ROLES, key=lambda r: r == "admin" or r in allowed):
        status = _call(api_client, method, path, body, keyed[role])
        if role == "admin" or role in allowed:
            assert status not in (401, 403), f"{role} was refused {method} {path}: {status}"
        else:
            assert status == 403, f"{role} was not refused {method} {path}: {status}"
    assert _call(api_client, method, path, body, {}) == 401
    assert _call(api_client, method, path, body, {"Authorization": "Bearer edg_nope"}) == 401


def test_probes_need_no_key(api_client: TestClient) -> None:
    assert api_client.get(f"{API}/healthz").status_code == 200
    assert api_client.get(f"{API}/readyz").status_code == 200


def test_refusals_use_the_error_envelope(api_client: TestClient, keyed: dict[str, dict[str, str]]) -> None:
    refused = api_client.get(f"{API}/webhooks", headers=keyed["auditor"]).json()
    assert refused["error"]["code"] == "forbidden"
    anonymous = api_client.get(f"{API}/webhooks").json()
    assert anonymous["error"]["code"] == "unauthorized"
