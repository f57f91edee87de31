"""``POST /inbound/{partner_id}``: who may post, what is accepted, and that refusals store nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.api.app import ROUTER_MODULES, create_app
from gateway.processing.publisher import PROCESS_MESSAGE, RecordingPublisher
from gateway.settings import Settings
from gateway.store.models import Message, OutboxEntry
from tests.conftest_api import ApiKeys, create_partner, sample_profile, settings_with_key

PO = (Path(__file__).resolve().parents[1] / "fixtures" / "po_004010.x12").read_bytes()
URL = "/api/v1/inbound/acme-retail"
X12 = {"content-type": "application/edi-x12"}


def _routers() -> list[object]:
    from gateway.inbound.views import router

    return [] if "gateway.inbound.views" in ROUTER_MODULES else [router]


@pytest.fixture
def inbound_app(embedded_settings: Settings) -> Iterator[FastAPI]:
    settings = settings_with_key(embedded_settings.data_dir, max_body_bytes=4096)
    app = create_app(settings, extra_routers=_routers())  # type: ignore[arg-type]
    app.state.publisher = RecordingPublisher()
    create_partner(app, sample_profile())
    create_partner(
        app,
        sample_profile(
            id="other-co",
            name="Other",
            x12={
                "interchange_id": {"qualifier": "ZZ", "id": "OTHERCO"},
                "our_id": {"qualifier": "ZZ", "id": "DISTCO"},
            },
        ),
    )
    yield app
    app.state.db.dispose()


@pytest.fixture
def client(inbound_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(inbound_app) as test_client:
        yield test_client


@pytest.fixture
def keys(inbound_app: FastAPI) -> ApiKeys:
    return ApiKeys(inbound_app.state.db)


def _stored(app: FastAPI) -> tuple[int, int, int]:
    with app.state.db.unit_of_work() as session:
        messages = session.scalar(select(func.count()).select_from(Message)) or 0
        outbox = session.scalar(select(func.count()).select_from(OutboxEntry)) or 0
    blobs = sum(1 for _ in app.state.blobs.iter_hashes())
    return messages, outbox, blobs


def test_partner_key_posts_x12_and_gets_202_with_the_message_id(
    client: TestClient, keys: ApiKeys, inbound_app: FastAPI
) -> None:
    answer = client.post(
        URL, content=PO, headers={**X12, **keys.headers("partner", partner_id="acme-retail")}
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "received" and body["size"] == len(PO)
    assert _stored(inbound_app) == (1, 1, 1)
    assert inbound_app.state.publisher.published[0][0] == PROCESS_MESSAGE


def test_admin_may_post_for_any_partner(client: TestClient, keys: ApiKeys) -> None:
    answer = client.post(URL, content=PO, headers={**X12, **keys.headers("admin")})
    assert answer.status_code == 202


def test_another_partners_key_is_forbidden_and_nothing_is_stored(
    client: TestClient, keys: ApiKeys, inbound_app: FastAPI
) -> None:
    answer = client.post(URL, content=PO, headers={**X12, **keys.headers("partner", partner_id="other-co")})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert _stored(inbound_app) == (0, 0, 0)


@pytest.mark.parametrize("role", ["erp", "onboarding", "auditor"])
def test_non_partner_roles_are_forbidden(client: TestClient, keys: ApiKeys, role: str) -> None:
    assert client.post(URL, content=PO, headers={**X12, **keys.headers(role)}).status_code == 403


def test_missing_or_wrong_key_is_401_and_nothing_is_stored(client: TestClient, inbound_app: FastAPI) -> None:
    assert client.post(URL, content=PO, headers=X12).status_code == 401
    assert (
        client.post(URL, content=PO, headers={**X12, "authorization": "Bearer edg_nope"}).status_code == 401
    )
    assert _stored(inbound_app) == (0, 0, 0)


def test_unknown_partner_is_404_and_nothing_is_stored(
    client: TestClient, keys: ApiKeys, inbound_app: FastAPI
) -> None:
    answer = client.post("/api/v1/inbound/nobody", content=PO, headers={**X12, **keys.headers("admin")})
    assert answer.status_code == 404
    assert _stored(inbound_app) == (0, 0, 0)


def test_body_over_the_limit_is_413_and_nothing_half_stored(
    client: TestClient, keys: ApiKeys, inbound_app: FastAPI
) -> None:
    headers = {**X12, **keys.headers("partner", partner_id="acme-retail")}
    declared = client.post(URL, content=b"x" * 5000, headers=headers)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        for _ in range(10):
            yield b"y" * 1000

    streamed = client.post(URL, content=chunks(), headers=headers)
    assert declared.status_code == 413 and streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert _stored(inbound_app) == (0, 0, 0)
    assert not any(inbound_app.state.blobs.tmp_dir.iterdir())


def test_unsupported_content_type_is_415(client: TestClient, keys: ApiKeys) -> None:
    answer = client.post(
        URL, content=b"%PDF", headers={"content-type": "application/pdf", **keys.headers("admin")}
    )
    assert answer.status_code == 415


def test_empty_body_is_400(client: TestClient, keys: ApiKeys, inbound_app: FastAPI) -> None:
    assert client.post(URL, content=b"", headers={**X12, **keys.headers("admin")}).status_code == 400
    assert _stored(inbound_app)[0] == 0


def test_broker_down_still_answers_202_and_leaves_the_outbox_row_due(
    client: TestClient, keys: ApiKeys, inbound_app: FastAPI
) -> None:
    inbound_app.state.publisher = RecordingPublisher(fail=True)
    answer = client.post(URL, content=PO, headers={**X12, **keys.headers("admin")})
    assert answer.status_code == 202
    with inbound_app.state.db.unit_of_work() as session:
        entry = session.scalars(select(OutboxEntry)).one()
        assert entry.status.value == "pending"
