"""Recording sends on SQLite and PostgreSQL (where the sent messages are marked in one statement):
receipts archived, outbox entries done or failed, one ``message.sent`` per message, and a message
that another worker settled meanwhile (or that is asked for twice) skipped, not sent over again."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select, update

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound.scheduled import settle_hook
from gateway.outbound.service import Submission, submit_documents
from gateway.processing.context import PipelineContext
from gateway.processing.sending import send_messages
from gateway.secrets import SecretBox
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.enums import DocumentStatus, MessageStatus, OutboxStatus
from gateway.store.models import Document, Event, Message, OutboxEntry
from gateway.transports import OutboundMessage, Receipt, TransportError
from partner_profiles.schema import PartnerProfile
from partner_profiles.service import save_profile, validate_profile_data
from tests.conftest_outbound import outbound_profile, sample_document

BOX = SecretBox(SecretStr("k" * 40))


class Partner:
    """A transport that answers each message with a receipt naming it, refuses some, and may
    let another worker settle a message while it is on its way."""

    def __init__(self, db: Database, *, refuse: set[str], settled_meanwhile: set[str]) -> None:
        self.db, self.refuse, self.settled_meanwhile = db, refuse, settled_meanwhile
        self.sent: list[str] = []

    def send(self, message: OutboundMessage, payload: bytes, profile: PartnerProfile) -> Receipt:
        self.sent.append(message.message_id)
        if message.message_id in self.refuse:
            raise TransportError("answered 400", retryable=False, status_code=400)
        if message.message_id in self.settled_meanwhile:
            with self.db.unit_of_work() as session:
                session.execute(
                    update(Message).where(Message.id == uuid.UUID(message.message_id))
                    .values(status=MessageStatus.SENT)
                )
        return Receipt(200, remote_id=f"r-{message.message_id}", body=f"ok {message.message_id}".encode())


def _context(database: Database, blob_store: BlobStore, tmp_path: Path) -> PipelineContext:
    settings = Settings(data_dir=str(tmp_path), secret_key="test-secret-key-0123456789abcdef")
    return PipelineContext(db=database, blobs=blob_store, settings=settings, box=BOX)


def _submit(ctx: PipelineContext, count: int) -> list[uuid.UUID]:
    with ctx.db.unit_of_work() as session:
        save_profile(session, validate_profile_data(outbound_profile()), box=BOX, actor="test")
        submitted = submit_documents(
            session,
            blobs=ctx.blobs,
            box=BOX,
            partner_id="acme-retail",
            document_type="order_acknowledgment",
            submissions=[
                Submission(sample_document("order_acknowledgment") | {"po_number": f"PO-{n}"}, None, f"c{n}")
                for n in range(count)
            ],
            actor="test",
            lease=timedelta(minutes=5),
            policy=RetryPolicy(window=timedelta(hours=1)),
        )
    return [item.message_id for item in submitted if item.message_id is not None]


def test_sends_are_recorded_once_with_receipts_and_settled_messages_are_skipped(
    database: Database, blob_store: BlobStore, tmp_path: Path
) -> None:
    ctx = _context(database, blob_store, tmp_path)
    sent, also_sent, refused, taken = _submit(ctx, 4)
    partner = Partner(database, refuse={str(refused)}, settled_meanwhile={str(taken)})
    outcomes = send_messages(
        ctx, [sent, also_sent, sent, refused, taken, uuid.uuid4()], transports={"http": partner},
        after=settle_hook(ctx),
    )
    assert [o.status for o in outcomes] == ["sent", "sent", "skipped", "failed", "skipped", "missing"]
    again = send_messages(ctx, [sent, refused], transports={"http": partner}, after=settle_hook(ctx))
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert Counter(partner.sent) == {str(sent): 2, str(also_sent): 1, str(refused): 1, str(taken): 1}
    with database.unit_of_work(read_only=True) as session:
        messages = {m.id: m for m in session.scalars(select(Message))}
        for message_id in (sent, also_sent):
            message = messages[message_id]
            assert (message.status, message.error) == (MessageStatus.SENT, None)
            assert message.transport_message_id == f"r-{message_id}"
            receipt = f"ok {message_id}".encode()
            assert message.receipt_sha256 == hashlib.sha256(receipt).hexdigest()
            with blob_store.open(message.receipt_sha256) as handle:
                assert handle.read() == receipt
        assert messages[refused].status is MessageStatus.FAILED
        assert messages[taken].receipt_sha256 is None  # the other worker's send, not ours
        outbox = {o.message_id: o.status for o in session.scalars(select(OutboxEntry))}
        assert outbox[sent] == outbox[also_sent] == OutboxStatus.DONE
        assert outbox[refused] is OutboxStatus.FAILED
        events = Counter((e.message_id, e.event_type) for e in session.scalars(select(Event)))
        assert events[(sent, "message.sent")] == events[(also_sent, "message.sent")] == 1
        assert events[(refused, "message.send_failed")] == 1 and events[(taken, "message.sent")] == 0
        documents = {d.message_id: d.status for d in session.scalars(select(Document))}
        assert documents[sent] == documents[also_sent] == DocumentStatus.SENT
        assert documents[refused] is DocumentStatus.FAILED
