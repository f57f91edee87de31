"""Duplicate lookups: same sender, receiver and ISA13 within the window, or identical bytes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from gateway.archive import BlobRef
from gateway.store.blobs import record_blob
from gateway.store.db import Database
from gateway.store.duplicates import (
    InterchangeRef,
    find_duplicate_interchange,
    find_message_with_same_content,
)
from gateway.store.enums import Direction, EnvelopeStatus, MessageStatus, Transport
from gateway.store.models import Interchange, Message
from gateway.store.types import utcnow

pytestmark = pytest.mark.integration

SHA = "ab" * 32


def _store_interchange(database: Database, *, control: str, age_days: int = 0) -> uuid.UUID:
    with database.unit_of_work() as session:
        record_blob(session, BlobRef(sha256=SHA, size=10))
        message = Message(
            direction=Direction.INBOUND,
            transport=Transport.AS2,
            status=MessageStatus.RECEIVED,
            content_sha256=SHA,
            size=10,
            correlation_id="c",
        )
        session.add(message)
        session.flush()
        interchange = Interchange(
            message_id=message.id,
            direction=Direction.INBOUND,
            sender_qualifier="ZZ",
            sender_id="ACME",
            receiver_qualifier="ZZ",
            receiver_id="DISTCO",
            control_number=control,
            version="00401",
            usage_indicator="T",
            status=EnvelopeStatus.ACCEPTED,
            correlation_id="c",
            created_at=utcnow() - timedelta(days=age_days),
        )
        session.add(interchange)
        session.flush()
        return message.id


def _find(database: Database, control: str, window_days: int = 365) -> InterchangeRef | None:
    with database.unit_of_work(read_only=True) as session:
        return find_duplicate_interchange(
            session,
            sender=("ZZ", "ACME"),
            receiver=("ZZ", "DISTCO"),
            control_number=control,
            window_days=window_days,
        )


def test_same_isa13_within_the_window_is_a_duplicate(database: Database) -> None:
    _store_interchange(database, control="000000007", age_days=30)
    assert _find(database, "000000007") is not None
    assert _find(database, "000000008") is None


def test_same_isa13_outside_the_window_is_not_a_duplicate(database: Database) -> None:
    _store_interchange(database, control="000000007", age_days=400)
    assert _find(database, "000000007") is None
    assert _find(database, "000000007", window_days=500) is not None


def test_byte_identical_content_finds_the_original_message(database: Database) -> None:
    original = _store_interchange(database, control="000000001")
    with database.unit_of_work(read_only=True) as session:
        found = find_message_with_same_content(session, content_sha256=SHA)
        assert found is not None and found.id == original
        assert find_message_with_same_content(session, content_sha256=SHA, exclude_id=original) is None
