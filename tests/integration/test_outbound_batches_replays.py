"""The two other callers of the generator's rows, on SQLite and PostgreSQL: a due batch gathers
stored documents into one interchange, and a replay copies its original's envelope (renumbered
or not) with ack expectations of its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.messages.service import replay_message
from gateway.outbound.replay import prepare_outbound_replay
from gateway.outbound.service import Submission, flush_due_batches, submit_documents
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import AckStatus, DocumentStatus, EnvelopeStatus, Transport
from gateway.store.models import (
    AckExpectation,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    TransactionSet,
)
from gateway.store.types import utcnow
from partner_profiles.service import save_profile, validate_profile_data
from tests.conftest_outbound import envelope_numbers, outbound_profile, sample_document

BOX = SecretBox(SecretStr("k" * 40))
POLICY = RetryPolicy(window=timedelta(hours=1))


def _setup(db: Database, **changes: object) -> None:
    with db.unit_of_work() as session:
        save_profile(session, validate_profile_data(outbound_profile(**changes)), box=BOX, actor="test")


def _submit(db: Database, blobs: BlobStore, document_type: str, numbers: list[str]) -> list[uuid.UUID]:
    field = "invoice_number" if document_type == "invoice" else "po_number"
    with db.unit_of_work() as session:
        answers = submit_documents(
            session,
            blobs=blobs,
            box=BOX,
            partner_id="acme-retail",
            document_type=document_type,
            submissions=[
                Submission(sample_document(document_type) | {field: n}, f"key-{n}", f"corr-{n}")
                for n in numbers
            ],
            actor="test",
            lease=timedelta(minutes=5),
            policy=POLICY,
        )
    return [a.message_id or a.document_id for a in answers]


def test_a_due_batch_links_its_stored_documents_to_one_interchange(
    database: Database, blob_store: BlobStore
) -> None:
    documents = outbound_profile()["documents"] | {
        "invoice": {"direction": "outbound", "batching": {"minutes": 15}}
    }
    _setup(database, documents=documents)
    ids = _submit(database, blob_store, "invoice", ["INV-1", "INV-2", "INV-3"])
    with database.unit_of_work(read_only=True) as session:
        stored = {d.id: d for d in session.scalars(select(Document))}
        assert set(stored) == set(ids) and {d.status for d in stored.values()} == {DocumentStatus.PENDING}
        references = session.scalars(select(DocumentReference.value)).all()
        assert {"INV-1", "INV-2", "INV-3"} <= set(references)
    [made] = flush_due_batches(database, blobs=blob_store, box=BOX, lease=timedelta(minutes=5),
                               now=utcnow() + timedelta(minutes=16))
    assert made.transaction_control_numbers == ("0001", "0002", "0003")
    with database.unit_of_work(read_only=True) as session:
        documents_now = session.scalars(select(Document).order_by(Document.created_at, Document.id)).all()
        assert {d.status for d in documents_now} == {DocumentStatus.GENERATED}
        assert {d.message_id for d in documents_now} == {made.message_id}
        sets = {t.id: t.control_number for t in session.scalars(select(TransactionSet))}
        linked = sorted(sets[d.transaction_id] for d in documents_now if d.transaction_id)
        assert linked == ["0001", "0002", "0003"]
        expectations = session.scalars(select(AckExpectation)).all()
        assert len(expectations) == 4 and {e.message_id for e in expectations} == {made.message_id}
    assert flush_due_batches(database, blobs=blob_store, box=BOX, lease=timedelta(minutes=5),
                             now=utcnow() + timedelta(minutes=40)) == []


@pytest.mark.parametrize("policy", ["new", "same"])
def test_a_replay_gets_its_own_envelope_rows_and_expectations(
    database: Database, blob_store: BlobStore, policy: str
) -> None:
    _setup(database)
    [original] = _submit(database, blob_store, "order_acknowledgment", ["PO-1"])
    with database.unit_of_work() as session:
        replay = replay_message(session, original, actor="test", duplicate_check=False, send_acks=True,
                                control_numbers=policy)  # type: ignore[arg-type]
    with database.unit_of_work() as session:
        assert prepare_outbound_replay(session, replay, blobs=blob_store, box=BOX, control_numbers=policy,
                                       now=utcnow())
    with database.unit_of_work(read_only=True) as session:
        message = session.get(Message, replay)
        assert message is not None and message.transport is Transport.HTTP
        assert message.ack_status is AckStatus.PENDING
        with blob_store.open(message.content_sha256) as handle:
            sent = envelope_numbers(handle.read().decode())
        [interchange] = session.scalars(select(Interchange).where(Interchange.message_id == replay)).all()
        [group] = session.scalars(
            select(FunctionalGroup).where(FunctionalGroup.interchange_id == interchange.id)
        ).all()
        [ts] = session.scalars(select(TransactionSet).where(TransactionSet.group_id == group.id)).all()
        expected = ("000000002", "2", "0002") if policy == "new" else ("000000001", "1", "0001")
        assert (interchange.control_number, group.control_number, ts.control_number) == expected
        assert (sent["isa13"], sent["groups"][0]["gs06"], sent["groups"][0]["sets"][0][1]) == expected
        assert interchange.status is EnvelopeStatus.PENDING and not interchange.is_duplicate
        assert (group.functional_id, group.ack_status) == ("PR", AckStatus.PENDING)
        assert (ts.set_id, ts.errors) == ("855", [])
        correlations = {group.correlation_id, ts.correlation_id, interchange.correlation_id}
        assert correlations == {message.correlation_id}
        found = session.scalars(select(AckExpectation).where(AckExpectation.message_id == replay))
        rows = {(e.transaction_id, e.transaction_control_number, e.group_control_number) for e in found}
        assert rows == {(None, None, expected[1]), (ts.id, expected[2], expected[1])}
