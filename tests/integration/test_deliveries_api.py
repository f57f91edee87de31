"""``/deliveries``: dead letters, details, redelivery with the same webhook-id, ERP outcomes, roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import ROUTER_MODULES, create_app
from gateway.deliveries.service import NewDelivery, RetryPolicy, create_deliveries, delivery_row
from gateway.processing.publisher import DELIVER, RecordingPublisher
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.enums import DeliveryStatus, DocumentStatus
from gateway.store.models import Delivery, Document
from gateway.store.types import utcnow
from gateway.webhooks.endpoints import create_endpoint
from tests.conftest_api import ApiKeys, create_partner, settings_with_key

API = "/api/v1/deliveries"


@pytest.fixture
def app(embedded_settings: Settings) -> Iterator[FastAPI]:
    from gateway.deliveries.views import router

    settings = settings_with_key(embedded_settings.data_dir)
    extra = [] if "gateway.deliveries.views" in ROUTER_MODULES else [router]
    application = create_app(settings, extra_routers=extra)
    application.state.publisher = RecordingPublisher()
    create_partner(application)
    yield application
    application.state.db.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def keys(app: FastAPI) -> ApiKeys:
    return ApiKeys(app.state.db)


def _delivery(app: FastAPI, status: DeliveryStatus) -> uuid.UUID:
    box = SecretBox.from_settings(app.state.settings)
    now = utcnow()
    with app.state.db.unit_of_work() as session:
        endpoint, _ = create_endpoint(
            session,
            url="https://erp.example/hook",
            events=["document.received"],
            box=box,
            actor="test",
            name=f"erp-{uuid.uuid4().hex[:6]}",
        )
        document = Document(
            id=uuid.uuid4(),
            partner_id="acme-retail",
            direction="inbound",
            document_type="purchase_order",
            status=DocumentStatus.DELIVERED,
            data={"document_type": "purchase_order"},
            correlation_id="c1",
        )
        session.add(document)
        session.flush()
        row = Delivery(**delivery_row(
            endpoint_id=endpoint.id,
            event_type="document.received",
            subject_id=document.id,
            payload={"partner_id": "acme-retail", "data": {}},
            partner_id="acme-retail",
            document_id=document.id,
            message_id=None,
            correlation_id="c1",
            policy=RetryPolicy(window=timedelta(hours=1)),
            now=now,
        ))
        row.status = status
        session.add(row)
        session.flush()
        return row.id


def test_erp_lists_dead_deliveries(client: TestClient, keys: ApiKeys, app: FastAPI) -> None:
    dead = _delivery(app, DeliveryStatus.DEAD)
    _delivery(app, DeliveryStatus.DELIVERED)
    answer = client.get(f"{API}?status=dead", headers=keys.headers("erp"))
    assert answer.status_code == 200
    body = answer.json()
    assert [item["id"] for item in body["items"]] == [str(dead)] and body["next"] is None


def test_list_pages_with_a_cursor(client: TestClient, keys: ApiKeys, app: FastAPI) -> None:
    ids = {str(_delivery(app, DeliveryStatus.DEAD)) for _ in range(3)}
    first = client.get(f"{API}?limit=2", headers=keys.headers("auditor")).json()
    second = client.get(f"{API}?limit=2&cursor={first['next']}", headers=keys.headers("auditor")).json()
    assert {i["id"] for i in first["items"] + second["items"]} == ids and second["next"] is None


def test_partner_and_onboarding_keys_may_not_read_deliveries(client: TestClient, keys: ApiKeys) -> None:
    assert client.get(API, headers=keys.headers("partner", partner_id="acme-retail")).status_code == 403
    assert client.get(API, headers=keys.headers("onboarding")).status_code == 403
    assert client.get(API).status_code == 401


def test_detail_shows_attempts_and_payload_but_no_secret(
    client: TestClient, keys: ApiKeys, app: FastAPI
) -> None:
    ident = _delivery(app, DeliveryStatus.DEAD)
    body = client.get(f"{API}/{ident}", headers=keys.headers("auditor")).json()
    assert body["attempts"] == [] and body["payload"]["type"] == "document.received"
    assert "whsec_" not in str(body)
    assert client.get(f"{API}/{uuid.uuid4()}", headers=keys.headers("erp")).status_code == 404


def test_redeliver_creates_a_linked_delivery_with_the_same_webhook_id(
    client: TestClient, keys: ApiKeys, app: FastAPI
) -> None:
    dead = _delivery(app, DeliveryStatus.DEAD)
    answer = client.post(f"{API}/{dead}/redeliver", headers=keys.headers("erp"))
    assert answer.status_code == 202
    body = answer.json()
    original = client.get(f"{API}/{dead}", headers=keys.headers("erp")).json()
    assert body["redelivery_of_id"] == str(dead) and body["status"] == "pending"
    assert body["webhook_id"] == original["webhook_id"]
    assert app.state.publisher.published[-1] == (DELIVER, {"delivery_ids": [body["id"]]})


def test_auditor_may_not_redeliver(client: TestClient, keys: ApiKeys, app: FastAPI) -> None:
    dead = _delivery(app, DeliveryStatus.DEAD)
    assert client.post(f"{API}/{dead}/redeliver", headers=keys.headers("auditor")).status_code == 403


def test_erp_accepts_and_fails_delivered_documents(client: TestClient, keys: ApiKeys, app: FastAPI) -> None:
    delivered = _delivery(app, DeliveryStatus.DELIVERED)
    accepted = client.post(
        f"{API}/{delivered}/accept", json={"reference": "SO-1"}, headers=keys.headers("erp")
    )
    assert accepted.status_code == 200 and accepted.json()["erp_outcome"] == "accepted"
    failed = client.post(
        f"{API}/{delivered}/fail", json={"reason": "unknown item"}, headers=keys.headers("erp")
    )
    assert failed.status_code == 200
    with app.state.db.unit_of_work() as session:
        delivery = session.get(Delivery, delivered)
        document = session.get(Document, delivery.document_id)  # type: ignore[union-attr]
        assert document is not None and document.status is DocumentStatus.FAILED


def test_accepting_an_undelivered_delivery_is_a_conflict(
    client: TestClient, keys: ApiKeys, app: FastAPI
) -> None:
    pending = _delivery(app, DeliveryStatus.PENDING)
    assert client.post(f"{API}/{pending}/accept", headers=keys.headers("erp")).status_code == 409
    assert client.post(f"{API}/{pending}/accept", headers=keys.headers("auditor")).status_code == 403


def test_deliveries_for_a_known_webhook_id_are_not_made_twice(app: FastAPI) -> None:
    box = SecretBox.from_settings(app.state.settings)
    subject = uuid.uuid4()
    with app.state.db.unit_of_work() as session:
        endpoints = [
            create_endpoint(session, url="https://erp.example/hook", events=["document.sent"], box=box,
                            actor="test", name=f"erp-{n}")[0]
            for n in range(2)
        ]

        def news(endpoint_ids: list[uuid.UUID]) -> list[NewDelivery]:
            return [NewDelivery(endpoint_id=endpoint_id, event_type="document.sent", subject_id=subject,
                                payload={"data": {}}, partner_id="acme-retail", document_id=None,
                                message_id=None, correlation_id="c1",
                                policy=RetryPolicy(window=timedelta(hours=1)), now=utcnow())
                    for endpoint_id in endpoint_ids]

        first, second = endpoints[0].id, endpoints[1].id
        made = create_deliveries(session, news([first, first]))  # the same webhook id twice in one call
        again = create_deliveries(session, news([second, first]))
    assert made[0] == made[1] == again[1] and again[0] != made[0]
    with app.state.db.unit_of_work(read_only=True) as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.endpoint_id.in_([first, second]))).all()
    assert sorted(ids) == sorted({made[0], again[0]})
