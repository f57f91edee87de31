"""Rows for PostgreSQL's JSON record sets: ids and times as text, big integers kept exact."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from gateway.store.core import record_json
from gateway.store.enums import MessageStatus


def test_ids_enums_and_aware_times_are_written_as_postgresql_reads_them() -> None:
    at = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    row = {"id": uuid.UUID(int=7), "status": MessageStatus.SENT, "at": at}
    assert json.loads(record_json([row])) == [
        {"id": "00000000-0000-0000-0000-000000000007", "status": "sent", "at": "2026-12-06T09:30:00+00:00"}
    ]


def test_an_integer_past_64_bits_is_written_exactly() -> None:
    row = {"id": uuid.UUID(int=1), "data": {"n": 10**30}, "at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert json.loads(record_json([row]))[0]["data"]["n"] == 10**30
