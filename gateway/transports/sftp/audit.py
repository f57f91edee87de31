"""The SFTP transport's entries in the hash-chained event trail (logins and file events)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from gateway.store.db import Database
from gateway.store.events import append_event

log = logging.getLogger("edigate.sftp.audit")


def record_event(
    db: Database,
    event_type: str,
    *,
    username: str | None,
    partner_id: str | None,
    message_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
    **data: Any,
) -> None:
    """Append one ``sftp.*`` event in its own transaction (logged, never raised, on failure)."""
    try:
        with db.unit_of_work() as session:
            append_event(
                session,
                event_type=event_type,
                actor=f"sftp:{username}" if username else "sftp",
                partner_id=partner_id,
                message_id=message_id,
                subject_type="sftp_account" if username else None,
                subject_id=username[:64] if username else None,
                correlation_id=correlation_id,
                data={"username": username, **(extra or {}), **data},
            )
    except Exception:
        log.exception("could not record %s for %s", event_type, username)
