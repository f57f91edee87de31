"""Opaque keyset cursors: base64url JSON tagged with the list they belong to.

Messages page newest first on ``(received_at, id)``; timelines page in chain order on the
event id. A cursor carries only the last row's key, so pages stay stable while rows arrive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.keyset import InvalidCursor, decode_cursor, encode_cursor


@dataclass(frozen=True)
class MessageCursor:
    """The key of the last message on a page: newest first by ``received_at``, then ``id``."""

    received_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """The opaque token handed to clients as ``next``."""
        stamp = self.received_at.astimezone(UTC).isoformat(timespec="microseconds")
        return encode_cursor("messages", {"r": stamp, "i": str(self.id)})

    @classmethod
    def decode(cls, token: str) -> MessageCursor:
        """Parse a token made by :meth:`encode`; raises ``InvalidCursor`` otherwise."""
        payload = decode_cursor(token, "messages")
        try:
            received_at = datetime.fromisoformat(str(payload["r"]))
            ident = uuid.UUID(str(payload["i"]))
        except (KeyError, ValueError) as exc:
            raise InvalidCursor("the cursor is not valid") from exc
        if received_at.tzinfo is None:
            raise InvalidCursor("the cursor is not valid")
        return cls(received_at=received_at.astimezone(UTC), id=ident)


@dataclass(frozen=True)
class EventCursor:
    """The id (chain position) of the last event on a timeline page."""

    after_id: int

    def encode(self) -> str:
        """The opaque token handed to clients as ``next``."""
        return encode_cursor("events", {"e": self.after_id})

    @classmethod
    def decode(cls, token: str) -> EventCursor:
        """Parse a token made by :meth:`encode`; raises ``InvalidCursor`` otherwise."""
        value = decode_cursor(token, "events").get("e")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidCursor("the cursor is not valid")
        return cls(after_id=value)
