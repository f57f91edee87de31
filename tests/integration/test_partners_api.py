"""The partner API: profiles in JSON and YAML, versions, encrypted secrets, soft deletion,
the side-effect-free sample test and partner keys (in-process client on SQLite; a few on
PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.secrets import SecretBox
from gateway.store.models import ApiKey, Event, Message, PartnerProfileVersion, PartnerSecret, WebhookEndpoint
from gateway.webhooks.endpoints import create_endpoint
from partner_profiles.schema import PartnerProfile
from partner_profiles.service import current_profile, find_partner_by_interchange_id
from tests.conftest_api import API, ApiKeys, create_partner, sample_profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PARTNERS = f"{API}/partners"
SECRETS = ("s3cret-pw", "acme-header-secret")


@pytest.fixture
def onboarding(api_keys: ApiKeys) -> dict[str, str]:
    return api_keys.headers("onboarding")


def _events(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    with app.state.db.unit_of_work(read_only=True) as session:
        rows = session.scalars(select(Event).where(Event.event_type == event_type).order_by(Event.id))
        return [{"actor": e.actor, "partner_id": e.partner_id, "data": e.data} for e in rows]


def _password(profile: PartnerProfile) -> str:
    sftp = profile.transports.sftp
    assert sftp is not None and sftp.remote is not None and sftp.remote.password is not None
    return sftp.remote.password.get_secret_value()


def _current(app: FastAPI, partner_id: str) -> tuple[Any, int] | None:
    with app.state.db.unit_of_work(read_only=True) as session:
        return current_profile(session, partner_id, SecretBox.from_settings(app.state.settings))


def test_create_answers_201_with_the_profile_secrets_masked_and_version_1(
        api_app: FastAPI, api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["id"], body["version"], body["changed"]) == ("acme-retail", 1, True)
    assert body["profile"]["transports"]["sftp"]["remote"]["password"] == "***"
    assert body["profile"]["transports"]["http"]["headers"] == {"X-Api-Key": "***"}
    assert not any(secret in answer.text for secret in SECRETS)
    [event] = _events(api_app, "partner.created")
    assert event["actor"] == "key:test-onboarding" and event["data"]["version"] == 1
    assert event["partner_id"] == "acme-retail"


def test_secrets_are_stored_encrypted_and_never_in_the_profile_json_or_events(
        api_app: FastAPI, api_client: TestClient, onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    with api_app.state.db.unit_of_work(read_only=True) as session:
        stored = repr(session.scalars(select(PartnerProfileVersion.profile)).all())
        ciphertexts = session.scalars(select(PartnerSecret.ciphertext)).all()
        events = repr([e.data for e in session.scalars(select(Event))])
    assert len(ciphertexts) == 2
    for secret in SECRETS:
        assert secret not in stored and secret not in events
        assert not any(secret in c for c in ciphertexts)
    found = _current(api_app, "acme-retail")
    assert found is not None
    profile, version = found
    assert version == 1
    assert profile.transports.sftp.remote.password.get_secret_value() == "s3cret-pw"
    assert profile.transports.http.headers["X-Api-Key"].get_secret_value() == "acme-header-secret"


def test_create_accepts_a_yaml_body(api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.post(PARTNERS, content=yaml.safe_dump(sample_profile()),
                             headers={**onboarding, "Content-Type": "application/yaml"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["profile"]["name"] == "ACME Retail"


def test_yaml_aliases_are_refused(api_client: TestClient, onboarding: dict[str, str]) -> None:
    body = "id: a\nname: &n x\nother: *n\n"
    answer = api_client.post(PARTNERS, content=body, headers={**onboarding, "Content-Type": "text/yaml"})
    assert answer.status_code == 422


def test_an_invalid_profile_is_422_naming_each_field(api_client: TestClient,
                                                     onboarding: dict[str, str]) -> None:
    profile = sample_profile(status="live")
    del profile["x12"]["our_id"]
    answer = api_client.post(PARTNERS, json=profile, headers=onboarding)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert {d["field"] for d in error["details"]} >= {"status", "x12.our_id"}


def test_other_media_types_are_415(api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.post(PARTNERS, content=b"<xml/>", headers={**onboarding, "Content-Type": "text/xml"})
    assert answer.status_code == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"


def test_creating_an_existing_partner_is_409(api_client: TestClient, onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    answer = api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    assert answer.status_code == 409
    assert answer.json()["error"]["details"][0]["field"] == "id"


def test_two_partners_cannot_share_an_interchange_id(api_client: TestClient,
                                                     onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    answer = api_client.post(PARTNERS, json=sample_profile(id="acme-two"), headers=onboarding)
    assert answer.status_code == 409
    assert answer.json()["error"]["details"][0]["field"] == "x12.interchange_id"


def test_two_partners_cannot_share_a_hosted_sftp_username(api_client: TestClient,
                                                          onboarding: dict[str, str]) -> None:
    sftp = {"sftp": {"hosted": {"username": "acme", "public_keys": []}}}
    first = api_client.post(PARTNERS, json=sample_profile(transports=sftp), headers=onboarding)
    assert first.status_code == 201
    other = sample_profile(id="acme-two", transports=sftp)
    other["x12"] = {**other["x12"], "interchange_id": {"qualifier": "ZZ", "id": "ACMETWO"}}
    answer = api_client.post(PARTNERS, json=other, headers=onboarding)
    assert answer.status_code == 409
    assert answer.json()["error"]["details"][0]["field"] == "transports.sftp.hosted.username"
    other["transports"] = {"sftp": {"hosted": {"username": "acme2", "public_keys": []}}}
    assert api_client.post(PARTNERS, json=other, headers=onboarding).status_code == 201
    # the same partner keeps its own username across versions
    assert api_client.put(f"{PARTNERS}/acme-retail", json=sample_profile(transports=sftp, name="ACME 2"),
                          headers=onboarding).status_code == 200


def test_a_json_mapping_that_does_not_compile_is_422_naming_it(api_client: TestClient,
                                                                onboarding: dict[str, str]) -> None:
    profile = sample_profile(json_mapping={"document_type": "purchase_order", "fields": {"po_number": "[["}})
    answer = api_client.post(PARTNERS, json=profile, headers=onboarding)
    assert answer.status_code == 422
    problem = answer.json()["error"]["details"][0]
    assert problem["field"] == "json_mapping" and "po_number" in problem["message"]


def test_put_stores_a_new_version_and_stars_keep_the_stored_secret(
        api_app: FastAPI, api_client: TestClient, onboarding: dict[str, str]) -> None:
    created = api_client.post(PARTNERS, json=sample_profile(), headers=onboarding).json()
    profile = created["profile"]
    profile["name"] = "ACME Retail Inc"
    profile["transports"]["http"]["headers"] = {"X-Api-Key": "rotated-header"}
    answer = api_client.put(f"{PARTNERS}/acme-retail", json=profile, headers=onboarding)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["version"], answer.json()["name"]) == (2, "ACME Retail Inc")
    found = _current(api_app, "acme-retail")
    assert found is not None
    current, version = found
    assert version == 2
    assert current.transports.sftp.remote.password.get_secret_value() == "s3cret-pw"
    assert current.transports.http.headers["X-Api-Key"].get_secret_value() == "rotated-header"
    [event] = _events(api_app, "partner.updated")
    assert event["data"]["version"] == 2
    assert event["data"]["changed_secrets"] == ["transports.http.headers.X-Api-Key"]


def test_put_of_the_same_profile_stores_no_new_version(api_app: FastAPI, api_client: TestClient,
                                                      onboarding: dict[str, str]) -> None:
    created = api_client.post(PARTNERS, json=sample_profile(), headers=onboarding).json()
    answer = api_client.put(f"{PARTNERS}/acme-retail", json=created["profile"], headers=onboarding)
    assert (answer.status_code, answer.json()["version"], answer.json()["changed"]) == (200, 1, False)
    assert _events(api_app, "partner.updated") == []


def test_put_without_a_secret_removes_it(api_app: FastAPI, api_client: TestClient,
                                         onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    profile = sample_profile()
    del profile["transports"]["http"]["headers"]
    assert api_client.put(f"{PARTNERS}/acme-retail", json=profile, headers=onboarding).status_code == 200
    with api_app.state.db.unit_of_work(read_only=True) as session:
        names = session.scalars(select(PartnerSecret.name)).all()
    assert names == ["/transports/sftp/remote/password"]


def test_stars_for_a_secret_that_was_never_stored_are_422(api_client: TestClient,
                                                         onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    profile = sample_profile()
    profile["transports"]["sftp"]["remote"]["private_key"] = "***"
    answer = api_client.put(f"{PARTNERS}/acme-retail", json=profile, headers=onboarding)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "transports.sftp.remote.private_key"


def test_put_with_another_id_in_the_body_is_422(api_client: TestClient, onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    answer = api_client.put(f"{PARTNERS}/acme-retail", json=sample_profile(id="other"), headers=onboarding)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "id"


def test_put_of_an_unknown_partner_is_404(api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.put(f"{PARTNERS}/acme-retail", json=sample_profile(), headers=onboarding)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_patch_applies_a_merge_patch_as_a_new_version(api_app: FastAPI, api_client: TestClient,
                                                      onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    patch = {"status": "active", "mappings": {"uom": {"CS": "CA", "PK": "PK"}}, "transports": {"http": None}}
    answer = api_client.patch(f"{PARTNERS}/acme-retail", json=patch,
                              headers={**onboarding, "Content-Type": "application/merge-patch+json"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["version"], body["status"]) == (2, "active")
    assert body["profile"]["x12"]["usage"] == "P"
    assert "http" not in body["profile"]["transports"]
    found = _current(api_app, "acme-retail")
    assert found is not None
    assert found[0].transports.sftp.remote.password.get_secret_value() == "s3cret-pw"


def test_patch_cannot_change_the_id(api_client: TestClient, onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    answer = api_client.patch(f"{PARTNERS}/acme-retail", json={"id": "other"}, headers=onboarding)
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "id"


def test_versions_are_listed_and_each_can_be_read(api_client: TestClient, onboarding: dict[str, str]) -> None:
    api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    for name in ("B", "C"):
        api_client.patch(f"{PARTNERS}/acme-retail", json={"name": name}, headers=onboarding)
    page = api_client.get(f"{PARTNERS}/acme-retail/versions?limit=2", headers=onboarding).json()
    assert [v["version"] for v in page["items"]] == [1, 2] and page["next"] == 2
    rest = api_client.get(f"{PARTNERS}/acme-retail/versions?limit=2&cursor=2", headers=onboarding).json()
    assert [v["version"] for v in rest["items"]] == [3] and rest["next"] is None
    first = api_client.get(f"{PARTNERS}/acme-retail/versions/1", headers=onboarding).json()
    assert first["profile"]["name"] == "ACME Retail"
    assert first["profile"]["transports"]["sftp"]["remote"]["password"] == "***"
    assert api_client.get(f"{PARTNERS}/acme-retail/versions/9", headers=onboarding).status_code == 404


def test_list_is_paginated_by_id(api_app: FastAPI, api_client: TestClient,
                                 onboarding: dict[str, str]) -> None:
    for n in range(3):
        profile = sample_profile(id=f"p{n}", name=f"P{n}")
        profile["x12"] = {**profile["x12"], "interchange_id": {"qualifier": "ZZ", "id": f"P{n}"}}
        create_partner(api_app, profile)
    page = api_client.get(f"{PARTNERS}?limit=2", headers=onboarding).json()
    assert [p["id"] for p in page["items"]] == ["p0", "p1"] and page["next"] == "p1"
    rest = api_client.get(f"{PARTNERS}?limit=2&cursor=p1", headers=onboarding).json()
    assert [p["id"] for p in rest["items"]] == ["p2"] and rest["next"] is None


def test_delete_hides_the_partner_keeps_versions_and_revokes_its_keys(
        api_app: FastAPI, api_client: TestClient, api_keys: ApiKeys, acme_partner: str) -> None:
    partner_key = api_keys.headers("partner", partner_id=acme_partner)
    onboarding = api_keys.headers("onboarding")
    assert api_client.delete(f"{PARTNERS}/{acme_partner}", headers=onboarding).status_code == 204
    assert api_client.get(f"{PARTNERS}/{acme_partner}", headers=onboarding).status_code == 404
    assert api_client.get(PARTNERS, headers=onboarding).json()["items"] == []
    versions = api_client.get(f"{PARTNERS}/{acme_partner}/versions", headers=onboarding).json()
    assert [v["version"] for v in versions["items"]] == [1]
    assert api_client.get(f"{API}/schemas", headers=partner_key).status_code == 401
    with api_app.state.db.unit_of_work(read_only=True) as session:
        assert find_partner_by_interchange_id(session, "ZZ", "ACMERETAIL") is None
    assert _events(api_app, "partner.deleted")[0]["data"]["revoked_keys"] == 1


def test_a_deleted_partner_can_be_created_again_as_a_new_version(
        api_client: TestClient, onboarding: dict[str, str], acme_partner: str) -> None:
    api_client.delete(f"{PARTNERS}/{acme_partner}", headers=onboarding)
    answer = api_client.post(PARTNERS, json=sample_profile(), headers=onboarding)
    assert (answer.status_code, answer.json()["version"]) == (201, 2)


def test_partner_is_found_by_its_interchange_id_padded_or_not(api_app: FastAPI, acme_partner: str) -> None:
    with api_app.state.db.unit_of_work(read_only=True) as session:
        found = find_partner_by_interchange_id(session, "ZZ", "ACMERETAIL     ")
        assert found is not None and found.id == acme_partner
        assert find_partner_by_interchange_id(session, "01", "ACMERETAIL") is None


def test_sample_test_answers_report_and_acks_and_writes_nothing(
        api_app: FastAPI, api_client: TestClient, onboarding: dict[str, str], acme_partner: str) -> None:
    def counts() -> tuple[int, int, int]:
        with api_app.state.db.unit_of_work(read_only=True) as session:
            return (session.scalar(select(func.count()).select_from(Event)) or 0,
                    session.scalar(select(func.count()).select_from(Message)) or 0,
                    session.scalar(select(func.count()).select_from(PartnerProfileVersion)) or 0)

    before = counts()
    archive = Path(api_app.state.settings.archive_dir())
    sample = (FIXTURES / "po_004010.x12").read_bytes()
    answer = api_client.post(f"{PARTNERS}/{acme_partner}/test", content=sample,
                             headers={**onboarding, "Content-Type": "application/edi-x12"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] is True and body["profile_version"] == 1
    group = body["report"]["interchanges"][0]["groups"][0]
    assert group["transactions"][0]["document"]["po_number"] == "PO-10001"
    assert {a["kind"] for a in body["acknowledgments"]} == {"TA1", "997"}
    assert counts() == before
    assert not archive.exists() or not any(p.is_file() for p in archive.rglob("*"))


def test_sample_test_of_broken_x12_reports_errors(api_client: TestClient, onboarding: dict[str, str],
                                                  acme_partner: str) -> None:
    answer = api_client.post(f"{PARTNERS}/{acme_partner}/test",
                             content=(FIXTURES / "broken_counts.x12").read_bytes(), headers=onboarding)
    assert answer.status_code == 200
    assert answer.json()["accepted"] is False


def test_sample_test_needs_a_body_and_a_known_partner(api_client: TestClient, onboarding: dict[str, str],
                                                      acme_partner: str) -> None:
    empty = api_client.post(f"{PARTNERS}/{acme_partner}/test", content=b"", headers=onboarding)
    assert empty.status_code == 422
    assert api_client.post(f"{PARTNERS}/nobody/test", content=b"ISA*", headers=onboarding).status_code == 404


def test_profile_bodies_over_the_limit_are_413(api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.post(PARTNERS, content=b"#" * (1024 * 1024 + 1),
                             headers={**onboarding, "Content-Type": "application/yaml"})
    assert answer.status_code == 413


def test_admin_creates_a_partner_key_shown_once_that_authenticates_as_the_partner(
        api_app: FastAPI, api_client: TestClient, api_keys: ApiKeys, acme_partner: str) -> None:
    admin = api_keys.headers("admin")
    answer = api_client.post(f"{PARTNERS}/{acme_partner}/keys", json={"name": "acme-inbound"}, headers=admin)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["role"], body["partner_id"]) == ("partner", acme_partner)
    listed = api_client.get(f"{PARTNERS}/{acme_partner}/keys", headers=admin).json()
    assert [k["name"] for k in listed["items"]] == ["acme-inbound"]
    assert body["key"] not in repr(listed)
    with api_app.state.db.unit_of_work(read_only=True) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.name == "acme-inbound")).one()
        assert row.key_hash != body["key"]
    revoke = api_client.delete(f"{PARTNERS}/{acme_partner}/keys/{body['id']}", headers=admin)
    assert revoke.status_code == 204
    listed = api_client.get(f"{PARTNERS}/{acme_partner}/keys", headers=admin).json()
    assert listed["items"][0]["revoked_at"] is not None


@pytest.mark.integration
def test_partner_lifecycle_on_postgresql(pg_api_app: FastAPI) -> None:
    keys = ApiKeys(pg_api_app.state.db)
    headers = keys.headers("onboarding")
    with TestClient(pg_api_app) as client:
        assert client.post(PARTNERS, json=sample_profile(), headers=headers).status_code == 201
        patched = client.patch(f"{PARTNERS}/acme-retail", json={"name": "ACME 2"}, headers=headers)
        assert patched.json()["version"] == 2
        conflict = client.post(PARTNERS, json=sample_profile(id="other"), headers=headers)
        assert conflict.status_code == 409
        with pg_api_app.state.db.unit_of_work(read_only=True) as session:
            found = find_partner_by_interchange_id(session, "ZZ", "ACMERETAIL")
            assert found is not None and found.name == "ACME 2"
            box = SecretBox.from_settings(pg_api_app.state.settings)
            loaded = current_profile(session, "acme-retail", box)
        assert loaded is not None and loaded[1] == 2
        assert _password(loaded[0]) == "s3cret-pw"
        assert client.delete(f"{PARTNERS}/acme-retail", headers=headers).status_code == 204


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        ("application/json", b"[" * 100_000 + b"]" * 100_000),  # past the interpreter's stack
        ("application/json", b'{"a":' * 200 + b"1" + b"}" * 200),  # past MAX_DOCUMENT_DEPTH
        ("application/yaml", b"a: " + b"[" * 500 + b"]" * 500),
    ],
)
def test_a_deeply_nested_profile_is_422_not_a_500(
    api_client: TestClient, onboarding: dict[str, str], media_type: str, body: bytes
) -> None:
    answer = api_client.post(PARTNERS, content=body, headers={**onboarding, "Content-Type": media_type})
    assert answer.status_code == 422, answer.text
    assert "nested" in answer.json()["error"]["details"][0]["message"]


def test_a_deeply_nested_merge_patch_is_422(api_client: TestClient, onboarding: dict[str, str]) -> None:
    create_partner(api_client.app)  # type: ignore[arg-type]
    patch = b'{"name":' * 5000 + b'"x"' + b"}" * 5000
    answer = api_client.patch(f"{PARTNERS}/acme-retail", content=patch,
                              headers={**onboarding, "Content-Type": "application/merge-patch+json"})
    assert answer.status_code == 422, answer.text


def test_a_profile_whose_documents_would_reach_no_erp_is_saved_with_a_warning(
        api_app: FastAPI, api_client: TestClient, onboarding: dict[str, str]) -> None:
    answer = api_client.post(PARTNERS, json=sample_profile(erp={"webhook": "erp-main"}), headers=onboarding)
    assert answer.status_code == 201, answer.text
    [warning] = answer.json()["warnings"]
    assert warning["field"] == "erp.webhook"
    assert warning["message"].startswith("no webhook endpoint is named 'erp-main'")

    with api_app.state.db.unit_of_work() as session:
        endpoint, _ = create_endpoint(session, url="https://erp.example/hook", events=["document.sent"],
                                      box=SecretBox.from_settings(api_app.state.settings), actor="test",
                                      name="erp-main")
        endpoint_id = endpoint.id
    sample = (FIXTURES / "po_004010.x12").read_bytes()
    tested = api_client.post(f"{PARTNERS}/acme-retail/test", content=sample,
                             headers={**onboarding, "Content-Type": "application/edi-x12"})
    assert any("'erp-main' is not subscribed to document.received" in note for note in tested.json()["notes"])

    with api_app.state.db.unit_of_work() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.events = ["document.received", "document.sent"]
    assert api_client.get(f"{PARTNERS}/acme-retail", headers=onboarding).json()["warnings"] == []
    with api_app.state.db.unit_of_work() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.enabled = False
    [warning] = api_client.get(f"{PARTNERS}/acme-retail", headers=onboarding).json()["warnings"]
    assert "'erp-main' is disabled" in warning["message"]
