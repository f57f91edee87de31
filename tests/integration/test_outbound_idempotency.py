"""Idempotency-Key races and what one submission writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from gateway.archive.blob_store import BlobStore
from gateway.deliveries.service import RetryPolicy
from gateway.outbound import service
from gateway.outbound.errors import IdempotencyRace
from gateway.outbound.service import Submitted, submit_document
from gateway.secrets import SecretBox
from gateway.store.db import Database
from gateway.store.enums import AckStatus, DocumentStatus, OutboxStatus
from gateway.store.models import (
    AckExpectation,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    TransactionSet,
)
from partner_profiles.service import save_profile, validate_profile_data
from tests.conftest_outbound import outbound_profile, sample_document

POLICY = RetryPolicy(window=timedelta(hours=1))


def _partner(db: Database) -> None:
    with db.unit_of_work() as session:
        profile = validate_profile_data(outbound_profile())
        save_profile(session, profile, box=SecretBox(SecretStr("k" * 40)), actor="test")


def _submit(db: Database, blobs: BlobStore, key: str | None, po: str = "PO-1") -> Submitted:
    with db.unit_of_work() as session:
        return _submit_in(session, blobs, key, po)


def _submit_in(session: Any, blobs: BlobStore, key: str | None, po: str = "PO-1") -> Submitted:
    return submit_document(
        session,
        blobs=blobs,
        box=None,
        partner_id="acme-retail",
        document_type="order_acknowledgment",
        data=sample_document("order_acknowledgment") | {"po_number": po},
        idempotency_key=key,
        actor="test",
        correlation_id=f"corr-{po}",
        lease=timedelta(minutes=5),
        policy=POLICY,
    )


def test_one_document_is_stored_generated_with_its_envelope_expectations_and_outbox(
    database: Database, blob_store: BlobStore
) -> None:
    _partner(database)
    answer = _submit(database, blob_store, "k-1", "PO-77")
    with database.unit_of_work(read_only=True) as session:
        document = session.get(Document, answer.document_id)
        assert document is not None and document.status is DocumentStatus.GENERATED
        assert document.message_id == answer.message_id and document.idempotency_key == "k-1"
        assert document.business_reference == "PO-77" and document.data["po_number"] == "PO-77"
        transaction = session.get(TransactionSet, document.transaction_id)
        assert transaction is not None and (transaction.set_id, transaction.control_number) == ("855", "0001")
        group = session.get(FunctionalGroup, transaction.group_id)
        assert group is not None and group.ack_status is AckStatus.PENDING
        interchange = session.get(Interchange, group.interchange_id)
        assert interchange is not None and interchange.message_id == answer.message_id
        message = session.get(Message, answer.message_id)
        assert message is not None and message.ack_status is AckStatus.PENDING
        assert message.filename == "855_000000001.x12" and not message.is_duplicate
        references = session.scalars(
            select(DocumentReference.value).where(DocumentReference.document_id == document.id)
        ).all()
        assert "PO-77" in references
        expectations = session.scalars(
            select(AckExpectation).where(AckExpectation.message_id == answer.message_id)
        ).all()
        assert sorted((e.transaction_id is None, e.details) for e in expectations) == [
            (False, {}),
            (True, {"ta1_expected": False}),
        ]
        outbox = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id == answer.message_id)).one()
        assert outbox.status is OutboxStatus.ENQUEUED and outbox.attempts == 1
        assert answer.generated is not None and answer.generated.outbox_id == outbox.id


def test_a_key_another_transaction_stored_after_our_lookup_is_a_race_and_rolls_back_the_numbers(
    database: Database, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _partner(database)
    first = _submit(database, blob_store, "k-1")
    monkeypatch.setattr(service, "_by_idempotency_key", lambda *args: {})  # looked before it committed
    with pytest.raises(IdempotencyRace):
        _submit(database, blob_store, "k-1")
    monkeypatch.undo()
    again = _submit(database, blob_store, "k-1")
    assert again.repeated and again.message_id == first.message_id
    later = _submit(database, blob_store, None, "PO-2")
    assert later.generated is not None and later.generated.interchange_control_number == "000000002"


@pytest.mark.integration
def test_two_transactions_racing_on_one_key_on_postgres_answer_one_message(
    pg_database: Database, blob_store: BlobStore
) -> None:
    _partner(pg_database)
    outcome: list[Any] = []
    pid: list[int] = []

    def second() -> None:
        try:
            with pg_database.unit_of_work() as session:
                pid.append(session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
                outcome.append(_submit_in(session, blob_store, "k-race"))
        except Exception as exc:
            outcome.append(exc)

    with pg_database.unit_of_work() as session:
        first = _submit_in(session, blob_store, "k-race")
        thread = threading.Thread(target=second)
        thread.start()
        _wait_until_blocked(pg_database, pid)
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], IdempotencyRace)
    retried = _submit(pg_database, blob_store, "k-race")
    assert retried.repeated and retried.message_id == first.message_id
    with pg_database.unit_of_work(read_only=True) as session:
        assert len(session.scalars(select(Message)).all()) == 1


def _wait_until_blocked(db: Database, pid: list[int]) -> None:
    """Until the other backend waits for a lock this transaction holds."""
    deadline = time.monotonic() + 20
    with db.unit_of_work(read_only=True) as session:
        while time.monotonic() < deadline:
            if pid and session.execute(
                text("SELECT cardinality(pg_blocking_pids(:pid)) > 0"), {"pid": pid[0]}
            ).scalar_one():
                return
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited")


def test_a_submitted_document_is_mapped_once_for_validation_and_generation(
    database: Database, blob_store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import translators.generate

    _partner(database)
    calls: list[object] = []
    original = translators.generate.from_canonical
    monkeypatch.setattr(
        translators.generate, "from_canonical", lambda *a, **k: calls.append(a) or original(*a, **k)
    )
    answer = _submit(database, blob_store, None, "PO-9")
    assert answer.generated is not None and calls == []
