"""process_message, send_message and deliveries as service calls (no broker), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.deliveries.service import send_deliveries
from gateway.deliveries.signing import verify
from gateway.http_pool import HttpPool
from gateway.intake import receive
from gateway.processing.context import PipelineContext
from gateway.processing.publisher import DELIVER, PROCESS_MESSAGE, SEND_MESSAGE, RecordingPublisher
from gateway.processing.sending import send_message
from gateway.processing.service import process_message
from gateway.processing.sweeps import sweep_deliveries, sweep_outbox
from gateway.processing.tuning import PipelineTuning
from gateway.store.enums import (
    AckStatus,
    DeliveryStatus,
    DocumentStatus,
    MessageStatus,
    OutboxStatus,
    Transport,
)
from gateway.store.models import Delivery, Document, DocumentReference, Interchange, Message, OutboxEntry
from gateway.transports.http import HttpTransport
from tests.conftest_outbound import functional_ack
from tests.conftest_pipeline import (
    RecordingServer,
    erp_endpoint_secret,
    receive_http,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PO = (FIXTURES / "po_004010.x12").read_bytes()


def x12_with_control(number: int, body: bytes = PO) -> bytes:
    """The fixture 850 with another ISA13/IEA02 (a new interchange, not a duplicate)."""
    return body.replace(b"000000101", f"{number:09d}".encode())


@pytest.fixture
def ctx(pipeline_ctx: PipelineContext) -> PipelineContext:
    return pipeline_ctx


def _deliver_all(ctx: PipelineContext) -> None:
    with ctx.db.unit_of_work() as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING)))
    pool = HttpPool(timeout=5)
    try:
        send_deliveries(ctx.db, ids, box=ctx.box, client=pool, policy=ctx.retry_policy())
    finally:
        pool.close()


def test_intake_records_message_outbox_and_publishes_processing(ctx: PipelineContext) -> None:
    message_id = receive_http(ctx, x12_with_control(201))
    with ctx.db.unit_of_work() as session:
        message = session.get(Message, message_id)
        entry = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id == message_id)).one()
    assert message is not None and message.status is MessageStatus.RECEIVED
    assert ctx.blobs.exists(message.content_sha256)
    assert entry.task_name == "process_message" and entry.status is OutboxStatus.ENQUEUED
    assert ctx.publisher.published == [
        (
            PROCESS_MESSAGE,
            {
                "message_id": str(message_id),  # type: ignore[union-attr]
                "outbox_id": entry.id,
            },
        )
    ]


def test_850_becomes_one_document_a_997_and_a_signed_webhook(
    ctx: PipelineContext, erp_server: RecordingServer, partner_http: RecordingServer
) -> None:
    message_id = receive_http(ctx, x12_with_control(202))
    outcome = process_message(ctx, message_id)
    assert outcome.status is MessageStatus.PROCESSED and len(outcome.document_ids) == 1
    assert len(outcome.ack_message_ids) == 2 and len(outcome.delivery_ids) == 1  # ISA14=1: TA1 and 997
    with ctx.db.unit_of_work() as session:
        document = session.get(Document, outcome.document_ids[0])
        message = session.get(Message, message_id)
        refs = session.scalars(
            select(DocumentReference.value).where(DocumentReference.document_id == outcome.document_ids[0])
        ).all()
        acks = session.scalars(select(Message).where(Message.id.in_(outcome.ack_message_ids))).all()
    ack = next(a for a in acks if b"ST*997" in ctx.blobs.open(a.content_sha256).read())
    assert document is not None and document.data["po_number"] == "PO-10001"
    assert document.business_reference == "PO-10001" and "PO-10001" in refs
    assert message is not None and message.ack_status is AckStatus.ACCEPTED and message.error is None
    assert ack.status is MessageStatus.QUEUED
    assert ctx.blobs.open(ack.content_sha256).read().startswith(b"ISA*")

    sent = send_message(ctx, ack.id, transports={"http": HttpTransport(timeout=5)})
    assert sent.status == "sent", sent.error
    assert partner_http.requests and b"ST*997" in partner_http.requests[0].body

    _deliver_all(ctx)
    assert len(erp_server.requests) == 1
    hook = erp_server.requests[0]
    with ctx.db.unit_of_work() as session:
        delivery = session.get(Delivery, outcome.delivery_ids[0])
        document = session.get(Document, outcome.document_ids[0])
    assert delivery is not None and delivery.status is DeliveryStatus.DELIVERED
    assert document is not None and document.status is DocumentStatus.DELIVERED
    body = hook.json()
    assert body["type"] == "document.received" and body["id"] == hook.headers["webhook-id"]
    assert (
        body["data"]["po_number"] == "PO-10001"
        and body["source"]["interchange_control_number"] == "000000202"
    )


def test_webhook_signature_verifies_with_the_endpoint_secret(
    ctx: PipelineContext, erp_server: RecordingServer
) -> None:
    _, secret = erp_endpoint_secret(ctx)
    process_message(ctx, receive_http(ctx, x12_with_control(203)))
    _deliver_all(ctx)
    hook = erp_server.requests[0]
    verify(secret, hook.headers, hook.body, now=int(time.time()))


def test_a_rotated_secret_keeps_signing_beside_the_new_one_until_the_overlap_ends(
    ctx: PipelineContext, erp_server: RecordingServer
) -> None:
    from datetime import timedelta

    from gateway.deliveries.signing import SignatureError
    from gateway.store.models import WebhookEndpoint
    from gateway.store.types import utcnow
    from gateway.webhooks.endpoints import EndpointChanges, update_endpoint

    endpoint_id, old = erp_endpoint_secret(ctx)
    with ctx.db.unit_of_work() as session:
        _, new = update_endpoint(session, endpoint_id, EndpointChanges(rotate_secret=True), box=ctx.box,
                                 actor="test", overlap=timedelta(hours=1))
    assert new is not None and new != old

    process_message(ctx, receive_http(ctx, x12_with_control(204)))
    _deliver_all(ctx)
    hook = erp_server.requests[-1]
    assert len(hook.headers["webhook-signature"].split()) == 2
    for secret in (new, old):  # the ERP may still hold either
        verify(secret, hook.headers, hook.body, now=int(time.time()))

    with ctx.db.unit_of_work() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.previous_secret_until = utcnow() - timedelta(seconds=1)
    process_message(ctx, receive_http(ctx, x12_with_control(205)))
    _deliver_all(ctx)
    hook = erp_server.requests[-1]
    verify(new, hook.headers, hook.body, now=int(time.time()))
    with pytest.raises(SignatureError):
        verify(old, hook.headers, hook.body, now=int(time.time()))


def test_processing_twice_creates_no_second_document_delivery_or_ack(ctx: PipelineContext) -> None:
    message_id = receive_http(ctx, x12_with_control(204))
    first = process_message(ctx, message_id)
    again = process_message(ctx, message_id)
    assert again.skipped and not again.document_ids
    with ctx.db.unit_of_work() as session:
        documents = session.scalar(select(func.count()).select_from(Document))
        deliveries = session.scalar(select(func.count()).select_from(Delivery))
        acks = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "outbound")
        )
        outbox = session.scalars(select(OutboxEntry.status).where(OutboxEntry.message_id == message_id)).all()
    assert (documents, deliveries, acks) == (1, 1, 2)
    assert outbox == [OutboxStatus.DONE] and len(first.document_ids) == 1


def test_duplicate_isa13_is_archived_and_flagged_but_not_translated_or_delivered(
    ctx: PipelineContext,
) -> None:
    first = process_message(ctx, receive_http(ctx, x12_with_control(205)))
    resend = x12_with_control(205).replace(b"PO-10001", b"PO-10002")  # other bytes, same ISA13
    second_id = receive_http(ctx, resend)
    second = process_message(ctx, second_id)
    assert second.is_duplicate and not second.document_ids and not second.delivery_ids
    with ctx.db.unit_of_work() as session:
        message = session.get(Message, second_id)
        flagged = session.scalars(select(Interchange).where(Interchange.message_id == second_id)).one()
        answer = session.scalars(select(Message).where(Message.id.in_(second.ack_message_ids))).one()
    assert message is not None and message.is_duplicate and message.duplicate_of_id == first.message_id
    assert flagged.is_duplicate and ctx.blobs.exists(message.content_sha256)
    # The partner hears why nothing happens: a TA1 rejecting the interchange with note 025.
    assert b"TA1*000000205*" in ctx.blobs.open(answer.content_sha256).read()
    assert b"*R*025" in ctx.blobs.open(answer.content_sha256).read()
    assert message.error is not None and "duplicate interchange: ISA13 000000205" in message.error


def test_byte_identical_resend_is_flagged_duplicate_of_the_first(ctx: PipelineContext) -> None:
    body = x12_with_control(206)
    first_id, second_id = receive_http(ctx, body), receive_http(ctx, body)
    second = process_message(ctx, second_id)  # the later copy first: it still points at the earlier one
    first = process_message(ctx, first_id)
    assert second.is_duplicate and second.duplicate_of == first_id and not second.document_ids
    assert not first.is_duplicate and len(first.document_ids) == 1
    with ctx.db.unit_of_work() as session:
        answer = session.scalars(select(Message).where(Message.id.in_(second.ack_message_ids))).one()
        recorded = session.scalars(select(Interchange).where(Interchange.message_id == second_id)).one()
    assert b"*R*025" in ctx.blobs.open(answer.content_sha256).read() and recorded.is_duplicate


def test_a_resent_997_is_flagged_duplicate_and_not_answered(ctx: PipelineContext) -> None:
    isa = ("ISA*00*          *00*          *ZZ*DISTCO         *ZZ*ACMERETAIL     *261122*0930*U*00401*"
           "000000007*0*T*>")
    body = functional_ack(f"{isa}~GS*PR*DISTCO*ACMERETAIL*20261122*0930*7*X*004010~ST*855*0001~", isa13=208)
    process_message(ctx, receive_http(ctx, body))
    again = process_message(ctx, receive_http(ctx, body))
    assert again.is_duplicate and not again.ack_message_ids  # never an acknowledgment of an acknowledgment


def test_malformed_x12_is_rejected_with_a_ta1_and_a_readable_error(ctx: PipelineContext) -> None:
    broken = x12_with_control(207).replace(b"IEA*1*000000207", b"IEA*1*000000999")
    message_id = receive_http(ctx, broken)
    outcome = process_message(ctx, message_id)
    assert outcome.status is MessageStatus.REJECTED and not outcome.document_ids
    with ctx.db.unit_of_work() as session:
        message = session.get(Message, message_id)
        acks = [
            ctx.blobs.open(m.content_sha256).read()
            for m in session.scalars(select(Message).where(Message.id.in_(outcome.ack_message_ids)))
        ]
    assert message is not None and message.error and "IEA" in message.error
    assert any(b"TA1*000000207" in ack and b"*R*001" in ack for ack in acks)


def test_broken_set_is_rejected_in_the_997_and_not_delivered(ctx: PipelineContext) -> None:
    broken = x12_with_control(208).replace(b"SE*17*0001", b"SE*99*0001")
    outcome = process_message(ctx, receive_http(ctx, broken))
    assert outcome.status is MessageStatus.REJECTED and not outcome.delivery_ids
    with ctx.db.unit_of_work() as session:
        acks = session.scalars(select(Message).where(Message.id.in_(outcome.ack_message_ids))).all()
        message = session.get(Message, outcome.message_id)
    assert any(b"AK5*R" in ctx.blobs.open(a.content_sha256).read() for a in acks)
    assert message is not None and message.ack_status is AckStatus.REJECTED and "SE" in (message.error or "")


def test_interchange_from_another_sender_is_rejected(ctx: PipelineContext) -> None:
    spoofed = x12_with_control(209).replace(b"ZZ*ACMERETAIL     ", b"ZZ*OTHERCORP      ")
    outcome = process_message(ctx, receive_http(ctx, spoofed))
    assert outcome.status is MessageStatus.REJECTED and not outcome.document_ids
    assert "ISA06" in (outcome.error or "")


def test_partner_json_is_mapped_by_the_profile_and_delivered(ctx: PipelineContext) -> None:
    payload = (
        b'{"order": {"id": "WEB-1", "created_at": "2026-01-05T10:00:00Z", "currency": "EUR",'
        b' "items": [{"sku": "SKU-1", "qty": 2, "price": 9.5}]}}'
    )
    outcome = process_message(ctx, receive_http(ctx, payload, "application/json"))
    assert outcome.status is MessageStatus.PROCESSED and len(outcome.delivery_ids) == 1
    with ctx.db.unit_of_work() as session:
        document = session.get(Document, outcome.document_ids[0])
    assert document is not None
    assert document.data["po_date"] == "2026-01-05" and document.data["lines"][0]["quantity"] == "2"


def test_canonical_json_with_errors_is_rejected_with_field_names(ctx: PipelineContext) -> None:
    payload = b'{"document_type": "purchase_order", "po_number": "X", "po_date": "yesterday"}'
    outcome = process_message(ctx, receive_http(ctx, payload, "application/json"))
    assert outcome.status is MessageStatus.REJECTED and "po_date" in (outcome.error or "")


def test_erp_answering_500_is_retried_then_dead_then_redelivered_with_the_same_webhook_id(
    ctx: PipelineContext, erp_server: RecordingServer
) -> None:
    from gateway.deliveries.service import redeliver
    from gateway.processing.context import PipelineContext as Ctx

    short = Ctx(
        db=ctx.db,
        blobs=ctx.blobs,
        settings=ctx.settings,
        box=ctx.box,
        publisher=ctx.publisher,
        tuning=PipelineTuning(webhook_backoff_seconds=0.01, webhook_retry_seconds=0.3),
    )
    outcome = process_message(short, receive_http(short, x12_with_control(210)))
    erp_server.status = 500
    deadline = time.monotonic() + 10
    while True:
        _deliver_all(short)
        with ctx.db.unit_of_work() as session:
            delivery = session.get(Delivery, outcome.delivery_ids[0])
        assert delivery is not None
        if delivery.status is DeliveryStatus.DEAD or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert delivery.status is DeliveryStatus.DEAD and delivery.attempt_count >= 2
    erp_server.status = 200
    with ctx.db.unit_of_work() as session:
        again = redeliver(session, delivery.id, policy=ctx.retry_policy(), actor="test")
    _deliver_all(ctx)
    with ctx.db.unit_of_work() as session:
        settled = session.get(Delivery, again.id)
    assert settled is not None and settled.status is DeliveryStatus.DELIVERED
    assert erp_server.webhook_ids() == {delivery.webhook_id}


def test_sweeps_publish_lost_work_again(ctx: PipelineContext) -> None:
    lost = RecordingPublisher(fail=True)
    message_id = receive(
        ctx.db,
        ctx.blobs,
        partner_id="acme-retail",
        transport=Transport.HTTP,
        body=x12_with_control(211),
        content_type="application/edi-x12",
        publisher=lost,
    ).message_id
    assert sweep_outbox(ctx).published == 1
    assert (PROCESS_MESSAGE, {"message_id": str(message_id), "outbox_id": 1}) in [
        (name, {k: v for k, v in kwargs.items()}) for name, kwargs in ctx.publisher.published
    ]  # type: ignore[union-attr]
    outcome = process_message(ctx, message_id, publish=False)
    with ctx.db.unit_of_work() as session:
        session.execute(Delivery.__table__.update().values(next_attempt_at=Delivery.created_at))
    assert sweep_deliveries(ctx).published == len(outcome.delivery_ids) == 1
    names = [name for name, _ in ctx.publisher.published]  # type: ignore[union-attr]
    assert DELIVER in names and SEND_MESSAGE not in names
