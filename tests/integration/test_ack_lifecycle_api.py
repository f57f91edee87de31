"""The acknowledgment lifecycle on the embedded stack, driven step by step (no broker): 997/999/TA1
reconciliation, unmatched acks, the overdue sweep, the review queue, metrics, deadlines, replays."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.acks.deadlines import at_risk, check_deadlines
from gateway.acks.overdue import mark_overdue
from gateway.outbound.scheduled import before_send
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import RecordingPublisher
from gateway.processing.service import process_message
from gateway.secrets import SecretBox
from gateway.store.enums import AckStatus, Direction, DocumentStatus
from gateway.store.models import Delivery, Document, DocumentReference, Message
from gateway.store.types import utcnow
from gateway.webhooks.endpoints import create_endpoint
from tests.conftest_api import ApiKeys, create_partner
from tests.conftest_outbound import envelope_numbers, functional_ack, outbound_profile, sample_document

pytestmark = pytest.mark.integration


@dataclass
class Lifecycle:
    """An app with acme-retail, an ERP endpoint for ack events, and a pipeline context."""

    app: FastAPI
    client: TestClient
    keys: ApiKeys
    ctx: PipelineContext

    def send(self, document_type: str = "order_acknowledgment", data: dict[str, Any] | None = None) -> str:
        answer = self.client.post(
            f"/api/v1/outbound/acme-retail/{document_type}",
            json=data or sample_document(document_type),
            headers=self.keys.headers("erp"),
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["message_id"])

    def raw(self, message_id: str) -> str:
        return str(
            self.client.get(f"/api/v1/messages/{message_id}/raw", headers=self.keys.headers("admin")).text
        )

    def receive(self, body: bytes) -> uuid.UUID:
        answer = self.client.post(
            "/api/v1/inbound/acme-retail",
            content=body,
            headers={
                **self.keys.headers("partner", partner_id="acme-retail"),
                "content-type": "application/edi-x12",
            },
        )
        assert answer.status_code == 202, answer.text
        message_id = uuid.UUID(answer.json()["message_id"])
        process_message(self.ctx, message_id)
        return message_id

    def acks(self, **params: Any) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/acks", params=params, headers=self.keys.headers("erp"))
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def deliveries(self, event_type: str) -> list[Delivery]:
        with self.app.state.db.unit_of_work(read_only=True) as session:
            rows = list(session.scalars(select(Delivery).where(Delivery.event_type == event_type)))
            session.expunge_all()
            return rows


@pytest.fixture
def life(outbound_app: FastAPI, outbound_client: TestClient, outbound_keys: ApiKeys) -> Lifecycle:
    create_partner(
        outbound_app,
        outbound_profile(
            deadlines=[
                {"rule": "within", "document": "order_acknowledgment", "of": "purchase_order", "hours": 24},
                {"rule": "before", "document": "ship_notice", "before": "invoice"},
            ]
        ),
    )
    settings = outbound_app.state.settings
    box = SecretBox.from_settings(settings)
    with outbound_app.state.db.unit_of_work() as session:
        create_endpoint(
            session,
            url="https://erp.example/hook",
            box=box,
            actor="test",
            name="erp-main",
            events=["ack.accepted", "ack.rejected", "ack.overdue", "deadline.at_risk", "deadline.breached"],
        )
    ctx = PipelineContext(
        db=outbound_app.state.db,
        blobs=outbound_app.state.blobs,
        settings=settings,
        box=box,
        publisher=RecordingPublisher(),
    )
    return Lifecycle(outbound_app, outbound_client, outbound_keys, ctx)


def test_a_997_accepting_the_855_moves_group_and_set_to_accepted(life: Lifecycle) -> None:
    message_id = life.send()
    ack_message = life.receive(functional_ack(life.raw(message_id)))
    [group] = life.acks(message_id=message_id)
    assert group["status"] == "accepted" and group["ack_message_id"] == str(ack_message)
    [one] = life.acks(message_id=message_id, level="transaction")
    assert one["status"] == "accepted" and one["transaction_control_number"] == "0001"
    with life.app.state.db.unit_of_work(read_only=True) as session:
        message = session.get(Message, uuid.UUID(message_id))
        assert message is not None and message.ack_status is AckStatus.ACCEPTED
        inbound = session.get(Message, ack_message)
        assert inbound is not None and inbound.status.value == "processed"
        # never an acknowledgment of an acknowledgment: nothing was queued back to the partner
        outbound = session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND)).all()
        assert [str(m.id) for m in outbound] == [message_id]
    assert [d.payload["data"]["status"] for d in life.deliveries("ack.accepted")] == ["accepted"]


def test_a_997_with_ak5_r_rejects_and_tells_the_erp_with_the_error_detail(life: Lifecycle) -> None:
    message_id = life.send()
    life.receive(functional_ack(life.raw(message_id), set_status="R"))
    [group] = life.acks(status="rejected")
    assert group["message_id"] == message_id
    detail = life.client.get(f"/api/v1/acks/{group['id']}", headers=life.keys.headers("auditor")).json()
    assert detail["transactions"][0]["status"] == "rejected"
    assert detail["transactions"][0]["errors"] == [{"level": "transaction", "code": "5"}]
    [delivery] = life.deliveries("ack.rejected")
    assert delivery.payload["type"] == "ack.rejected" and delivery.payload["partner_id"] == "acme-retail"
    assert delivery.payload["document_type"] == "order_acknowledgment"
    assert delivery.payload["data"]["transactions"][0]["business_reference"] == "PO-10001"
    assert ("edigate.deliver", {"delivery_ids": [str(delivery.id)]}) in life.ctx.publisher.published  # type: ignore[union-attr]


def test_an_ack_matching_nothing_we_sent_is_flagged_and_listed(life: Lifecycle) -> None:
    sent = life.send()
    message = life.receive(functional_ack(life.raw(sent), gs06="999"))
    answer = life.client.get("/api/v1/acks/unmatched", headers=life.keys.headers("auditor")).json()
    assert [(i["message_id"], i["group_control_number"]) for i in answer["items"]] == [(str(message), "999")]
    assert life.acks(message_id=sent)[0]["status"] == "pending"


def test_a_rejecting_ta1_rejects_the_interchange(life: Lifecycle) -> None:
    sent = life.send()
    isa13 = envelope_numbers(life.raw(sent))["isa13"]
    ta1 = (
        "ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTCO         *261122*0930*U*00401*"
        f"000004242*0*T*>~TA1*{isa13}*261122*0930*R*005~IEA*0*000004242~"
    ).encode()
    life.receive(ta1)
    [group] = life.acks(message_id=sent)
    assert group["status"] == "rejected" and group["details"]["ta1"]["ack_code"] == "R"


def test_no_ack_by_due_at_turns_overdue_raises_ack_overdue_and_waits_for_review(life: Lifecycle) -> None:
    sent = life.send()
    with life.app.state.db.unit_of_work() as session:
        assert mark_overdue(session, policy=life.ctx.retry_policy(), now=utcnow()).expectation_ids == []
    with life.app.state.db.unit_of_work() as session:
        outcome = mark_overdue(session, policy=life.ctx.retry_policy(), now=utcnow() + timedelta(hours=25))
    assert len(outcome.expectation_ids) == 1 and len(outcome.delivery_ids) == 1
    [delivery] = life.deliveries("ack.overdue")
    assert delivery.payload["data"]["status"] == "overdue" and delivery.message_id == uuid.UUID(sent)
    [group] = life.acks(status="overdue", reviewed="false")
    assert life.acks(status="overdue", level="transaction")[0]["status"] == "overdue"
    url = f"/api/v1/acks/{group['id']}/review"
    assert life.client.post(url, json={"note": "x"}, headers=life.keys.headers("auditor")).status_code == 403
    assert life.client.get("/api/v1/acks", headers=life.keys.headers("onboarding")).status_code == 403
    reviewed = life.client.post(url, json={"note": "called ACME, resent"}, headers=life.keys.headers("erp"))
    assert reviewed.status_code == 200
    assert (
        reviewed.json()["reviewed_by"] == "key:test-erp"
        and reviewed.json()["review_note"] == "called ACME, resent"
    )
    assert life.acks(status="overdue", reviewed="false") == []
    metrics = life.client.get("/api/v1/metrics", headers=life.keys.headers("auditor")).text
    assert 'edigate_ack_groups{partner="acme-retail",ack_type="997",status="overdue"} 1' in metrics
    assert "edigate_ack_overdue_oldest_age_seconds" in metrics
    # a late 997 still reconciles
    life.receive(functional_ack(life.raw(sent)))
    assert life.acks(message_id=sent)[0]["status"] == "accepted"


def test_an_855_not_sent_within_the_window_of_its_850_is_reported_at_risk(life: Lifecycle) -> None:
    now = utcnow()
    with life.app.state.db.unit_of_work() as session:
        for po, age in (("PO-LATE", 30), ("PO-SOON", 20), ("PO-FINE", 1)):
            document = Document(
                id=uuid.uuid4(),
                partner_id="acme-retail",
                direction=Direction.INBOUND,
                document_type="purchase_order",
                status=DocumentStatus.RECEIVED,
                data={"po_number": po},
                correlation_id="c",
                created_at=now - timedelta(hours=age),
            )
            session.add(document)
            session.flush()
            session.add(DocumentReference(document_id=document.id, qualifier="po_number", value=po))
    report = life.client.get("/api/v1/reports/at-risk", headers=life.keys.headers("erp")).json()["items"]
    assert [(i["po_number"], i["level"]) for i in report] == [("PO-LATE", "breached"), ("PO-SOON", "at_risk")]
    assert (
        life.client.get("/api/v1/reports/at-risk", headers=life.keys.headers("onboarding")).status_code == 403
    )
    life.send(data=sample_document("order_acknowledgment") | {"po_number": "PO-SOON"})
    with life.app.state.db.unit_of_work() as session:
        assert [i.subject for i in at_risk(session, now=utcnow())] == ["PO-LATE"]
        assert len(check_deadlines(session, policy=life.ctx.retry_policy(), now=utcnow())) == 1
    with life.app.state.db.unit_of_work() as session:
        assert check_deadlines(session, policy=life.ctx.retry_policy(), now=utcnow()) == []  # raised once


def test_an_invoice_before_its_ship_notice_breaches_at_once(life: Lifecycle) -> None:
    life.send("invoice")
    [delivery] = life.deliveries("deadline.breached")
    assert delivery.payload["data"]["po_number"] == "PO-10001"
    assert delivery.payload["data"]["rule"] == "ship_notice before invoice"


def test_an_outbound_replay_with_new_control_numbers_is_renumbered_and_expects_its_own_ack(
    life: Lifecycle,
) -> None:
    sent = life.send()
    answer = life.client.post(
        f"/api/v1/messages/{sent}/replay",
        headers=life.keys.headers("admin"),
        json={"duplicate_check": False, "send_acks": True, "control_numbers": "new"},
    )
    assert answer.status_code == 202, answer.text
    replay = answer.json()["message_id"]
    assert before_send(life.ctx, uuid.UUID(replay), control_numbers="new")
    assert not before_send(life.ctx, uuid.UUID(replay), control_numbers="new")  # once only
    original, again = envelope_numbers(life.raw(sent)), envelope_numbers(life.raw(replay))
    assert (original["isa13"], again["isa13"]) == ("000000001", "000000002")
    assert again["groups"][0]["sets"] == [("855", "0002")]
    [group] = life.acks(message_id=replay)
    assert group["group_control_number"] == "2" and group["status"] == "pending"
    with life.app.state.db.unit_of_work(read_only=True) as session:
        message = session.get(Message, uuid.UUID(replay))
        assert message is not None and message.transport.value == "http"
        assert message.replay_of_id == uuid.UUID(sent)
