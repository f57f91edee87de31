"""Settling sent and failed outbound documents in the transaction that records the sends, on SQLite
and PostgreSQL: statuses, ack clocks and the ERP's ``document.sent``/``document.failed`` webhooks."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import select

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound.service import Submission, submit_documents
from gateway.outbound.settling import settle_documents
from gateway.processing.sending import SettledMessage
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import AckStatus, Direction, DocumentStatus, MessageStatus, Transport
from gateway.store.models import AckExpectation, Delivery, Document
from gateway.store.types import utcnow
from gateway.webhooks.endpoints import create_endpoint
from partner_profiles.service import save_profile, validate_profile_data
from tests.conftest_outbound import outbound_profile, sample_document

BOX = SecretBox(SecretStr("k" * 40))
POLICY = RetryPolicy(window=timedelta(hours=1))


def _settled(message_id: object, status: MessageStatus) -> SettledMessage:
    return SettledMessage(
        id=message_id,  # type: ignore[arg-type]
        partner_id="acme-retail",
        direction=Direction.OUTBOUND,
        status=status,
        transport=Transport.HTTP,
        filename="855.x12",
        correlation_id="c",
        error="refused" if status is MessageStatus.FAILED else None,
        receipt_sha256=None,
    )


def test_sent_and_failed_documents_are_settled_once_with_their_webhooks_and_ack_clocks(
    database: Database, blob_store: BlobStore
) -> None:
    with database.unit_of_work() as session:
        save_profile(session, validate_profile_data(outbound_profile()), box=BOX, actor="test")
        create_endpoint(session, url="https://erp.example/hook", events=["document.sent", "document.failed"],
                        box=BOX, actor="test", name="erp-main")
        submitted = submit_documents(
            session,
            blobs=blob_store,
            box=BOX,
            partner_id="acme-retail",
            document_type="order_acknowledgment",
            submissions=[
                Submission(sample_document("order_acknowledgment") | {"po_number": f"PO-{n}"}, None, f"c{n}")
                for n in range(3)
            ],
            actor="test",
            lease=timedelta(minutes=5),
            policy=POLICY,
        )
    sent, failed, untouched = submitted
    later = utcnow() + timedelta(hours=2)
    messages = [
        _settled(sent.message_id, MessageStatus.SENT), _settled(failed.message_id, MessageStatus.FAILED)
    ]
    with database.unit_of_work() as session:
        deliveries = settle_documents(session, messages, later, box=BOX, policy=POLICY)
    assert set(deliveries) == {sent.message_id, failed.message_id}
    assert all(len(ids) == 1 for ids in deliveries.values())
    with database.unit_of_work() as session:
        assert settle_documents(session, messages, later, box=BOX, policy=POLICY) == {}  # once only
    with database.unit_of_work(read_only=True) as session:
        status = {d.id: d.status for d in session.scalars(select(Document))}
        assert status == {
            sent.document_id: DocumentStatus.SENT,
            failed.document_id: DocumentStatus.FAILED,
            untouched.document_id: DocumentStatus.GENERATED,
        }
        events = {d.document_id: (d.event_type, d.payload) for d in session.scalars(select(Delivery))}
        assert events[sent.document_id][0] == "document.sent"
        event_type, payload = events[failed.document_id]
        assert event_type == "document.failed" and payload["data"] == {
            "status": "failed", "error": "refused", "receipt_sha256": None
        }
        assert payload["business_reference"] == "PO-1" and payload["message_id"] == str(failed.message_id)
        due = {
            e.message_id: e.due_at
            for e in session.scalars(select(AckExpectation).where(AckExpectation.status == AckStatus.PENDING))
        }
        assert due[sent.message_id] == later + timedelta(hours=24)  # restarted when it really left
        assert due[failed.message_id] == due[untouched.message_id] < due[sent.message_id]
