"""Opaque keyset cursors for every paged list: base64url JSON tagged with the list's kind.

A cursor carries only the last row's key, so pages stay stable while rows arrive; a token
made for one list is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from gateway.json_input import MAX_DOCUMENT_DEPTH, load_json

_VERSION = 1


class InvalidCursor(ValueError):
    """A pagination cursor that this server did not issue (or for another list)."""


def encode_cursor(kind: str, values: dict[str, Any]) -> str:
    """The opaque token for ``values`` (JSON-able) on the list ``kind``."""
    payload = json.dumps({"v": _VERSION, "k": kind, **values}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(token: str, kind: str) -> dict[str, Any]:
    """The values of a token made by :func:`encode_cursor` for ``kind``; ``InvalidCursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = load_json(raw.decode("utf-8"), max_depth=MAX_DOCUMENT_DEPTH)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not valid") from exc
    if not isinstance(payload, dict) or payload.get("v") != _VERSION or payload.get("k") != kind:
        raise InvalidCursor("the cursor is not valid for this list")
    return payload


def encode_position(kind: str, at: datetime, ident: uuid.UUID | int) -> str:
    """The token for a list ordered by a timestamp, then an id."""
    return encode_cursor(kind, {"c": at.isoformat(), "i": str(ident)})


def decode_position(token: str, kind: str) -> tuple[datetime, str]:
    """The (timestamp, id) of a token made by :func:`encode_position`; ``InvalidCursor`` otherwise."""
    payload = decode_cursor(token, kind)
    try:
        return datetime.fromisoformat(str(payload["c"])), str(payload["i"])
    except (KeyError, ValueError) as exc:
        raise InvalidCursor("the cursor is not valid") from exc
