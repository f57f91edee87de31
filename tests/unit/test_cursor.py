"""Pagination cursors are opaque, round-trip exactly and reject anything they did not issue."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.keyset import InvalidCursor
from gateway.messages.cursor import EventCursor, MessageCursor


def test_message_cursor_round_trips_timestamp_to_the_microsecond_and_id() -> None:
    cursor = MessageCursor(datetime(2026, 11, 22, 9, 30, 0, 123456, tzinfo=UTC), uuid.uuid4())
    assert MessageCursor.decode(cursor.encode()) == cursor


def test_message_cursor_normalises_other_zones_to_utc() -> None:
    local = datetime(2026, 11, 22, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    decoded = MessageCursor.decode(MessageCursor(local, uuid.uuid4()).encode())
    assert decoded.received_at == local and decoded.received_at.tzinfo == UTC


def test_cursor_is_url_safe_without_padding() -> None:
    token = MessageCursor(datetime.now(UTC), uuid.uuid4()).encode()
    assert "=" not in token and "+" not in token and "/" not in token


def test_event_cursor_round_trips() -> None:
    assert EventCursor.decode(EventCursor(42).encode()) == EventCursor(42)


@pytest.mark.parametrize("token", ["", "not-base64!", "e30", base64.urlsafe_b64encode(b"[1,2]").decode()])
def test_garbage_cursor_is_rejected(token: str) -> None:
    with pytest.raises(InvalidCursor):
        MessageCursor.decode(token)


def test_cursor_of_another_list_is_rejected() -> None:
    with pytest.raises(InvalidCursor):
        MessageCursor.decode(EventCursor(5).encode())
    with pytest.raises(InvalidCursor):
        EventCursor.decode(MessageCursor(datetime.now(UTC), uuid.uuid4()).encode())


def _forge(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [
        {"v": 1, "k": "messages", "r": "2026-11-22T09:30:00", "i": str(uuid.uuid4())},  # naive time
        {"v": 1, "k": "messages", "r": "yesterday", "i": str(uuid.uuid4())},
        {"v": 1, "k": "messages", "r": "2026-11-22T09:30:00+00:00", "i": "not-a-uuid"},
        {"v": 2, "k": "messages", "r": "2026-11-22T09:30:00+00:00", "i": str(uuid.uuid4())},
    ],
)
def test_malformed_message_cursor_is_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidCursor):
        MessageCursor.decode(_forge(payload))


@pytest.mark.parametrize("value", [-1, "7", True, None])
def test_malformed_event_cursor_is_rejected(value: object) -> None:
    with pytest.raises(InvalidCursor):
        EventCursor.decode(_forge({"v": 1, "k": "events", "e": value}))
