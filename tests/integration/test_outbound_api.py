"""``POST /outbound/{partner}/{type}`` on the embedded stack: roles, validation, idempotency,
generation (ISA15, control numbers, archive, expectations, outbox), batching, replays, and
what we generate read cleanly by ``edigate translate`` and pyx12."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pyx12.x12file import X12Reader
from sqlalchemy import select

from gateway.outbound.service import flush_due_batches
from gateway.store.enums import AckStatus, DocumentStatus, MessageStatus, OutboxStatus
from gateway.store.models import AckExpectation, Document, Message, OutboxEntry
from gateway.store.types import utcnow
from tests.conftest_api import ApiKeys, create_partner
from tests.conftest_outbound import envelope_numbers, outbound_profile, sample_document

pytestmark = pytest.mark.integration
URL = "/api/v1/outbound/acme-retail"


def _post(
    client: TestClient,
    keys: ApiKeys,
    document_type: str,
    data: dict[str, Any] | None = None,
    role: str = "erp",
    key: str | None = None,
) -> Any:
    headers = keys.headers(role) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"{URL}/{document_type}", json=data or sample_document(document_type), headers=headers)


def _raw(client: TestClient, keys: ApiKeys, message_id: str) -> str:
    answer = client.get(f"/api/v1/messages/{message_id}/raw", headers=keys.headers("admin"))
    assert answer.status_code == 200
    return str(answer.text)


def test_erp_posts_an_855_and_gets_202_with_the_message_of_its_interchange(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    answer = _post(outbound_client, outbound_keys, "order_acknowledgment")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "queued" and body["control_numbers"] == {
        "interchange": "000000001",
        "group": "1",
        "transactions": ["0001"],
    }
    x12 = _raw(outbound_client, outbound_keys, body["message_id"])
    assert x12.startswith("ISA*00*") and x12[102] == "T"  # ISA15 from the partner's test status
    assert envelope_numbers(x12)["groups"][0]["sets"] == [("855", "0001")]
    with outbound_app.state.db.unit_of_work(read_only=True) as session:
        message = session.get(Message, uuid.UUID(body["message_id"]))
        assert (
            message is not None
            and message.status is MessageStatus.QUEUED
            and message.transport.value == "http"
        )
        document = session.get(Document, uuid.UUID(body["document_id"]))
        assert document is not None and document.status is DocumentStatus.GENERATED
        expectations = session.scalars(
            select(AckExpectation).where(AckExpectation.message_id == message.id)
        ).all()
        assert sorted((e.transaction_control_number or "", e.status) for e in expectations) == [
            ("", AckStatus.PENDING),
            ("0001", AckStatus.PENDING),
        ]
        outbox = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id == message.id)).one()
        assert outbox.task_name == "send_message" and outbox.status is OutboxStatus.ENQUEUED
        outbox_id = outbox.id
    assert outbound_app.state.publisher.published[0] == (
        "edigate.send_message",
        {"message_id": body["message_id"], "outbox_id": outbox_id},
    )


def test_roles_other_than_erp_and_admin_may_not_send(
    outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    for role in ("auditor", "onboarding"):
        assert _post(outbound_client, outbound_keys, "invoice", role=role).status_code == 403
    partner_key = outbound_keys.headers("partner", partner_id=outbound_partner)
    assert (
        outbound_client.post(
            f"{URL}/invoice", json=sample_document("invoice"), headers=partner_key
        ).status_code
        == 403
    )
    assert outbound_client.post(f"{URL}/invoice", json=sample_document("invoice")).status_code == 401
    assert _post(outbound_client, outbound_keys, "invoice", role="admin").status_code == 202


def test_invalid_documents_get_422_with_field_level_errors(
    outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    data = sample_document("invoice")
    data["lines"][0]["quantity"] = "twelve"
    answer = _post(outbound_client, outbound_keys, "invoice", data)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert {"field": "lines[0].quantity"}.items() <= error["details"][0].items()
    assert _post(outbound_client, outbound_keys, "purchase_order").status_code == 422  # inbound-only type
    assert (
        outbound_client.post(
            "/api/v1/outbound/nobody/invoice",
            json=sample_document("invoice"),
            headers=outbound_keys.headers("erp"),
        ).status_code
        == 404
    )


def test_same_idempotency_key_and_body_answer_the_same_message_and_a_new_body_conflicts(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    first = _post(outbound_client, outbound_keys, "invoice", key="inv-77")
    again = _post(outbound_client, outbound_keys, "invoice", key="inv-77")
    assert first.status_code == again.status_code == 202
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.headers["idempotent-replayed"] == "true"
    changed = sample_document("invoice") | {"invoice_number": "OTHER-1"}
    conflict = _post(outbound_client, outbound_keys, "invoice", changed, key="inv-77")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    with outbound_app.state.db.unit_of_work(read_only=True) as session:
        assert len(session.scalars(select(Message)).all()) == 1


def test_an_active_partner_gets_production_interchanges_with_consecutive_numbers(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys
) -> None:
    create_partner(outbound_app, outbound_profile(status="active"))
    ids = [
        _post(outbound_client, outbound_keys, t).json()["message_id"]
        for t in ("order_acknowledgment", "ship_notice", "invoice")
    ]
    numbers = [envelope_numbers(_raw(outbound_client, outbound_keys, i)) for i in ids]
    assert [n["isa13"] for n in numbers] == ["000000001", "000000002", "000000003"]
    assert [n["groups"][0]["gs06"] for n in numbers] == ["1", "2", "3"]
    assert [n["groups"][0]["sets"][0][1] for n in numbers] == ["0001", "0002", "0003"]
    assert all(_raw(outbound_client, outbound_keys, i)[102] == "P" for i in ids)


def test_batching_gathers_documents_of_one_type_into_one_interchange_when_due(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys
) -> None:
    documents = outbound_profile()["documents"] | {
        "invoice": {"direction": "outbound", "batching": {"minutes": 15}}
    }
    create_partner(outbound_app, outbound_profile(documents=documents))
    answers = [
        _post(
            outbound_client,
            outbound_keys,
            "invoice",
            sample_document("invoice") | {"invoice_number": f"INV-{n}"},
        )
        for n in range(3)
    ]
    assert {a.json()["status"] for a in answers} == {"batched"} and answers[0].json()["message_id"] is None
    state = outbound_app.state
    assert flush_due_batches(state.db, blobs=state.blobs, box=None, lease=timedelta(minutes=5)) == []
    made = flush_due_batches(
        state.db,
        blobs=state.blobs,
        box=None,
        lease=timedelta(minutes=5),
        now=utcnow() + timedelta(minutes=16),
    )
    assert len(made) == 1 and made[0].transaction_control_numbers == ("0001", "0002", "0003")
    x12 = _raw(outbound_client, outbound_keys, str(made[0].message_id))
    assert [s for _, s in envelope_numbers(x12)["groups"][0]["sets"]] == ["0001", "0002", "0003"]
    assert x12.count("BIG*") == 3


def _x12_errors_pyx12(x12: str) -> list[Any]:
    reader = X12Reader(io.StringIO(x12))
    errors: list[Any] = []
    for _ in reader:
        errors.extend(reader.pop_errors())
    return errors + list(reader.pop_errors())


@pytest.mark.parametrize("document_type", ["order_acknowledgment", "ship_notice", "invoice"])
def test_generated_855_856_810_read_cleanly_by_edigate_translate_and_pyx12(
    document_type: str,
    outbound_client: TestClient,
    outbound_keys: ApiKeys,
    outbound_partner: str,
    tmp_path: Any,
) -> None:
    message_id = _post(outbound_client, outbound_keys, document_type).json()["message_id"]
    x12 = _raw(outbound_client, outbound_keys, message_id)
    assert _x12_errors_pyx12(x12) == []
    path = tmp_path / "out.x12"
    path.write_text(x12)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "edigate"), "translate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    transaction = report["interchanges"][0]["groups"][0]["transactions"][0]
    assert transaction["document_type"] == document_type and transaction["errors"] == []


def _batch(client: TestClient, keys: ApiKeys, items: list[dict[str, Any]], role: str = "erp") -> Any:
    url = f"{URL}/order_acknowledgment/batch"
    return client.post(url, json={"documents": items}, headers=keys.headers(role))


def _item(po: str, key: str | None = None) -> dict[str, Any]:
    return {"idempotency_key": key, "document": sample_document("order_acknowledgment") | {"po_number": po}}


def test_a_batch_gives_each_document_its_own_interchange_with_consecutive_numbers(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    answer = _batch(outbound_client, outbound_keys, [_item(f"PO-{n}", f"b{n}") for n in range(3)])
    assert answer.status_code == 202, answer.text
    documents = answer.json()["documents"]
    numbers = [(d["control_numbers"]["interchange"], d["control_numbers"]["transactions"]) for d in documents]
    assert numbers == [("000000001", ["0001"]), ("000000002", ["0002"]), ("000000003", ["0003"])]
    for document, n in zip(documents, range(3), strict=True):
        x12 = _raw(outbound_client, outbound_keys, document["message_id"])
        assert f"BAK*00*AC*PO-{n}*" in x12 or f"*PO-{n}*" in x12
    # One send task carries the whole batch; the worker records the receipts together.
    assert outbound_app.state.publisher.published[-1] == (
        "edigate.send_message", {"message_ids": [d["message_id"] for d in documents]}
    )
    again = _batch(outbound_client, outbound_keys, [_item("PO-0", "b0"), _item("PO-9", "b9")])
    assert again.status_code == 202, again.text
    first, second = again.json()["documents"]
    assert first["repeated"] and first["message_id"] == documents[0]["message_id"]
    assert not second["repeated"] and second["control_numbers"]["interchange"] == "000000004"


def test_a_batch_with_one_bad_document_is_refused_whole_naming_the_document(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    bad = _item("PO-2")
    bad["document"]["lines"] = "not a list"
    answer = _batch(outbound_client, outbound_keys, [_item("PO-1"), bad])
    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["error"]["details"]] == ["[1].lines"]
    twice = _batch(outbound_client, outbound_keys, [_item("PO-1", "same"), _item("PO-2", "same")])
    assert twice.status_code == 422 and twice.json()["error"]["details"][0]["field"] == "idempotency_key"
    with outbound_app.state.db.unit_of_work(read_only=True) as session:
        assert session.scalars(select(Document)).all() == []  # all or none


def test_a_batch_over_the_limit_is_413_and_other_roles_are_403(
    outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys, outbound_partner: str
) -> None:
    limit = outbound_app.state.settings.max_outbound_batch
    answer = _batch(outbound_client, outbound_keys, [_item(f"PO-{n}") for n in range(limit + 1)])
    assert answer.status_code == 413
    assert _batch(outbound_client, outbound_keys, [_item("PO-1")], role="auditor").status_code == 403
