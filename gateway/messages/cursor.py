"""Opaque keyset cursors: base64url JSON tagged with the list they belong to.

Messages page newest first on ``(received_at, id)``; timelines page in chain order on the
event id. A cursor carries only the last row's key, so pages stay stable while rows arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.json_input import MAX_DOCUMENT_DEPTH, load_json
from gateway.messages.errors import InvalidCursor

_VERSION = 1


def _encode(kind: str, values: dict[str, Any]) -> str:
    payload = json.dumps({"v": _VERSION, "k": kind, **values}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")


def _decode(token: str, kind: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = load_json(raw.decode("utf-8"), max_depth=MAX_DOCUMENT_DEPTH)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not valid") from exc
    if not isinstance(payload, dict) or payload.get("v") != _VERSION or payload.get("k") != kind:
        raise InvalidCursor("the cursor is not valid for this list")
    return payload


@dataclass(frozen=True)
class MessageCursor:
    """The key of the last message on a page: newest first by ``received_at``, then ``id``."""

    received_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        """The opaque token handed to clients as ``next``."""
        stamp = self.received_at.astimezone(UTC).isoformat(timespec="microseconds")
        return _encode("messages", {"r": stamp, "i": str(self.id)})

    @classmethod
    def decode(cls, token: str) -> MessageCursor:
        """Parse a token made by :meth:`encode`; raises ``InvalidCursor`` otherwise."""
        payload = _decode(token, "messages")
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
        return _encode("events", {"e": self.after_id})

    @classmethod
    def decode(cls, token: str) -> EventCursor:
        """Parse a token made by :meth:`encode`; raises ``InvalidCursor`` otherwise."""
        value = _decode(token, "events").get("e")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidCursor("the cursor is not valid")
        return cls(after_id=value)
