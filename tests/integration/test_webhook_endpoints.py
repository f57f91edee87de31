"""Webhook endpoint registration: secrets shown once and encrypted at rest, validation,
changes, rotation, soft deletion and the lookups the delivery worker uses."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.secrets import DecryptionError, SecretBox
from gateway.store.models import Event, WebhookEndpoint
from gateway.webhooks import endpoint_secret, endpoints_for_event
from tests.conftest_api import API, ApiKeys

WEBHOOKS = f"{API}/webhooks"
GIVEN_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def erp(api_keys: ApiKeys) -> dict[str, str]:
    return api_keys.headers("erp")


def _create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"url": "https://erp.example/hooks", "events": ["document.received"], **body}
    answer = client.post(WEBHOOKS, json=payload, headers=headers)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _stored(app: FastAPI, endpoint_id: str) -> tuple[str, str]:
    """The endpoint's stored ciphertext and its decrypted secret."""
    box = SecretBox.from_settings(app.state.settings)
    with app.state.db.unit_of_work(read_only=True) as session:
        row = session.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        assert row is not None
        return row.secret_ciphertext, endpoint_secret(session, row, box)


def test_a_generated_secret_is_whsec_32_bytes_shown_only_in_the_create_answer(
        api_app: FastAPI, api_client: TestClient, erp: dict[str, str]) -> None:
    created = _create(api_client, erp, name="erp-main")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    fetched = api_client.get(f"{WEBHOOKS}/{created['id']}", headers=erp)
    assert fetched.status_code == 200 and "secret" not in fetched.json()
    listed = api_client.get(WEBHOOKS, headers=erp)
    assert secret not in listed.text and listed.json()["items"][0]["name"] == "erp-main"
    ciphertext, plain = _stored(api_app, created["id"])
    assert plain == secret and secret not in ciphertext


def test_the_secret_is_bound_to_its_endpoint_row(api_app: FastAPI, api_client: TestClient,
                                                 erp: dict[str, str]) -> None:
    created = _create(api_client, erp)
    ciphertext, _ = _stored(api_app, created["id"])
    box = SecretBox.from_settings(api_app.state.settings)
    with pytest.raises(DecryptionError):
        box.decrypt_text(ciphertext, context=f"webhook:{uuid.uuid4()}")


def test_a_given_secret_is_kept(api_app: FastAPI, api_client: TestClient, erp: dict[str, str]) -> None:
    created = _create(api_client, erp, secret=GIVEN_SECRET)
    assert _stored(api_app, created["id"])[1] == GIVEN_SECRET


@pytest.mark.parametrize(("body", "field"), [
    ({"secret": "not-a-secret"}, "secret"),
    ({"secret": "whsec_" + base64.b64encode(b"short").decode()}, "secret"),
    ({"events": ["document.recieved"]}, "events"),
    ({"url": "ftp://erp.example/x"}, "url"),
    ({"url": "https://user:pw@erp.example/x"}, "url"),
])
def test_invalid_fields_are_422_naming_the_field(api_client: TestClient, erp: dict[str, str],
                                                 body: dict[str, Any], field: str) -> None:
    payload = {"url": "https://erp.example/hooks", "events": ["document.received"], **body}
    answer = api_client.post(WEBHOOKS, json=payload, headers=erp)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == field
    assert "not-a-secret" not in answer.text


def test_names_are_unique_among_live_endpoints(api_client: TestClient, erp: dict[str, str]) -> None:
    first = _create(api_client, erp, name="erp-main")
    assert api_client.post(WEBHOOKS, json={"url": "https://x.example", "events": ["*"], "name": "erp-main"},
                           headers=erp).status_code == 409
    assert api_client.delete(f"{WEBHOOKS}/{first['id']}", headers=erp).status_code == 204
    assert _create(api_client, erp, name="erp-main")["name"] == "erp-main"


def test_patch_changes_fields_and_rotation_answers_the_new_secret_once(
        api_app: FastAPI, api_client: TestClient, erp: dict[str, str]) -> None:
    created = _create(api_client, erp)
    changed = api_client.patch(f"{WEBHOOKS}/{created['id']}", json={"events": ["ack.overdue", "*"],
                                                                      "enabled": False}, headers=erp)
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["ack.overdue", "*"], False)
    assert "secret" not in changed.json()
    rotated = api_client.patch(f"{WEBHOOKS}/{created['id']}", json={"rotate_secret": True},
                               headers=erp).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert _stored(api_app, created["id"])[1] == rotated["secret"]
    # the old secret signs too for EDIGATE_WEBHOOK_SECRET_OVERLAP_HOURS (24 by default)
    assert created["previous_secret_until"] is None
    until = datetime.fromisoformat(rotated["previous_secret_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)


def test_delete_hides_the_endpoint_and_stops_its_deliveries(api_app: FastAPI, api_client: TestClient,
                                                           erp: dict[str, str]) -> None:
    created = _create(api_client, erp)
    assert api_client.delete(f"{WEBHOOKS}/{created['id']}", headers=erp).status_code == 204
    assert api_client.get(f"{WEBHOOKS}/{created['id']}", headers=erp).status_code == 404
    assert api_client.get(WEBHOOKS, headers=erp).json() == {"items": [], "next": None}
    with api_app.state.db.unit_of_work(read_only=True) as session:
        assert endpoints_for_event(session, "document.received") == []


def test_endpoints_for_event_matches_subscriptions_and_wildcards(api_app: FastAPI, api_client: TestClient,
                                                                erp: dict[str, str]) -> None:
    a = _create(api_client, erp, name="a", events=["document.received"])
    b = _create(api_client, erp, name="b", events=["*"])
    _create(api_client, erp, name="c", events=["ack.overdue"])
    _create(api_client, erp, name="d", events=["*"], enabled=False)
    with api_app.state.db.unit_of_work(read_only=True) as session:
        names = {e.name for e in endpoints_for_event(session, "document.received")}
    assert names == {"a", "b"} and a["id"] != b["id"]


def test_changes_are_in_the_event_trail_with_the_actor_and_without_the_secret(
        api_app: FastAPI, api_client: TestClient, erp: dict[str, str]) -> None:
    created = _create(api_client, erp, secret=GIVEN_SECRET)
    api_client.patch(f"{WEBHOOKS}/{created['id']}", json={"url": "https://erp.example/v2"}, headers=erp)
    api_client.delete(f"{WEBHOOKS}/{created['id']}", headers=erp)
    with api_app.state.db.unit_of_work(read_only=True) as session:
        events = [(e.event_type, e.actor, repr(e.data)) for e in
                  session.scalars(select(Event).where(Event.subject_type == "webhook").order_by(Event.id))]
    assert [e[0] for e in events] == ["webhook.created", "webhook.updated", "webhook.deleted"]
    assert all(actor == "key:test-erp" for _, actor, _ in events)
    assert not any(GIVEN_SECRET in data for _, _, data in events)


def test_list_is_paginated(api_client: TestClient, erp: dict[str, str]) -> None:
    ids = sorted(_create(api_client, erp, name=f"w{n}")["id"] for n in range(3))
    page = api_client.get(f"{WEBHOOKS}?limit=2", headers=erp).json()
    assert [w["id"] for w in page["items"]] == ids[:2] and page["next"] == ids[1]
    rest = api_client.get(f"{WEBHOOKS}?limit=2&cursor={page['next']}", headers=erp).json()
    assert [w["id"] for w in rest["items"]] == ids[2:] and rest["next"] is None


def test_unknown_endpoint_is_404(api_client: TestClient, erp: dict[str, str]) -> None:
    answer = api_client.patch(f"{WEBHOOKS}/{uuid.uuid4()}", json={"enabled": False}, headers=erp)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


@pytest.mark.integration
def test_webhook_registration_on_postgresql(pg_api_app: FastAPI) -> None:
    headers = ApiKeys(pg_api_app.state.db).headers("erp")
    with TestClient(pg_api_app) as client:
        created = _create(client, headers, name="erp-main", events=["*"])
        assert _stored(pg_api_app, created["id"])[1] == created["secret"]
        with pg_api_app.state.db.unit_of_work(read_only=True) as session:
            assert [e.name for e in endpoints_for_event(session, "ack.overdue")] == ["erp-main"]
