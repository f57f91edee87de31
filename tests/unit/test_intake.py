"""Intake on a throwaway SQLite database: archive first, one transaction, publish after commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.archive.blob_store import BlobStore, BlobTooLarge
from gateway.intake import PartnerSuspended, UnknownPartner, receive
from gateway.processing.publisher import PROCESS_MESSAGE, RecordingPublisher
from gateway.store.db import Database
from gateway.store.enums import OutboxStatus, PartnerStatus, Transport
from gateway.store.events import verify_chain
from gateway.store.models import Event, Message, OutboxEntry, Partner


@pytest.fixture
def db(sqlite_database: Database) -> Iterator[Database]:
    with sqlite_database.unit_of_work() as session:
        session.add(Partner(id="acme", name="Acme", status=PartnerStatus.TEST, current_version=0))
        session.add(Partner(id="frozen", name="Frozen", status=PartnerStatus.SUSPENDED, current_version=0))
    yield sqlite_database


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "archive")


def _count(db: Database, model: type) -> int:
    with db.unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_receive_archives_records_and_publishes(db: Database, blobs: BlobStore) -> None:
    publisher = RecordingPublisher()
    received = receive(
        db,
        blobs,
        partner_id="acme",
        transport=Transport.HTTP,
        body=[b"ISA*", b"rest"],
        content_type="application/edi-x12",
        filename="po.x12",
        publisher=publisher,
    )
    assert blobs.open(received.blob.sha256).read() == b"ISA*rest"
    with db.unit_of_work() as session:
        message = session.get(Message, received.message_id)
        entry = session.get(OutboxEntry, received.outbox_id)
        events = session.scalars(select(Event.event_type)).all()
        assert message is not None and message.filename == "po.x12" and message.size == 8
        assert entry is not None and entry.status is OutboxStatus.ENQUEUED
        assert "message.received" in events and verify_chain(session) == []
    assert publisher.published == [
        (PROCESS_MESSAGE, {"message_id": str(received.message_id), "outbox_id": received.outbox_id})
    ]


def test_lost_publish_makes_the_outbox_row_due_for_the_sweeper(db: Database, blobs: BlobStore) -> None:
    received = receive(
        db,
        blobs,
        partner_id="acme",
        transport=Transport.SFTP,
        body=b"x",
        content_type=None,
        publisher=RecordingPublisher(fail=True),
    )
    with db.unit_of_work() as session:
        entry = session.get(OutboxEntry, received.outbox_id)
        assert entry is not None and entry.status is OutboxStatus.PENDING


def test_unknown_and_suspended_partners_store_nothing(db: Database, blobs: BlobStore) -> None:
    for partner, error in (("nobody", UnknownPartner), ("frozen", PartnerSuspended)):
        with pytest.raises(error):
            receive(db, blobs, partner_id=partner, transport=Transport.HTTP, body=b"x", content_type=None)
    assert _count(db, Message) == 0 and not list(blobs.iter_hashes())


def test_too_large_body_stores_nothing(db: Database, blobs: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        receive(
            db,
            blobs,
            partner_id="acme",
            transport=Transport.HTTP,
            body=[b"x" * 10] * 3,
            content_type=None,
            max_bytes=25,
        )
    assert _count(db, Message) == 0 and not list(blobs.iter_hashes()) and not any(blobs.tmp_dir.iterdir())
