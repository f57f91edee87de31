"""Phase 3's state: the :class:`Writer` that stages one message's rows, and inserting them all at once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.processing.context import PipelineContext
from gateway.processing.outcome import ProcessOutcome
from gateway.processing.reading import Snapshot
from gateway.processing.x12_parse import ParsedInterchange, ParsedX12
from gateway.store.core import insert_tables, table_of
from gateway.store.duplicates import InterchangeRef
from gateway.store.enums import AckStatus
from gateway.store.models import (
    Delivery,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    OutboxEntry,
    TransactionSet,
)
from translators.acks import Acknowledgment

IsaKey = tuple[str, str, str, str, str]  # sender qualifier and id, receiver qualifier and id, ISA13
Arrival = tuple[datetime, uuid.UUID]  # a message's received_at and id: the order of arrival
# Rows are inserted parents first: elsewhere than PostgreSQL a foreign key is checked at once.
_TABLE_ORDER = (
    table_of(Message),
    table_of(Interchange),
    table_of(FunctionalGroup),
    table_of(TransactionSet),
    table_of(Document),
    table_of(DocumentReference),
    table_of(Delivery),
    table_of(OutboxEntry),
)


@dataclass
class Locked:
    """The message row as phase 3 found it under its lock."""

    id: uuid.UUID
    partner_id: str
    correlation_id: str
    content_sha256: str
    received_at: datetime
    replay_of_id: uuid.UUID | None
    ack_status: AckStatus | None


@dataclass
class PendingAcks:
    """What an X12 message's write still does once its acks can be numbered (all of a batch's at once)."""

    parsed: ParsedX12
    acks: list[tuple[ParsedInterchange, tuple[list[Acknowledgment], Counter[str]]]]
    fresh: list[ParsedInterchange]  # acknowledgments in these reconcile what we sent
    duplicates: list[uuid.UUID]
    resend_of: uuid.UUID | None


@dataclass
class Writer:
    """Phase 3 state: the session, the locked message, and the rows staged so far."""

    session: Session
    ctx: PipelineContext
    snap: Snapshot
    message: Locked
    now: datetime
    outcome: ProcessOutcome
    errors: list[str] = field(default_factory=list)
    ack_statuses: list[AckStatus] = field(default_factory=list)
    ack_events: list[dict[str, Any]] = field(default_factory=list)
    rejected_sets: int = 0
    group_rows: dict[tuple[uuid.UUID, str], dict[str, Any]] = field(default_factory=dict)
    staged: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    settles: list[dict[str, Any]] | None = None  # a batch settles its messages in one statement at its end
    pending: PendingAcks | None = None  # an X12 message's write waiting for its acks' numbers
    seen_isa: dict[IsaKey, InterchangeRef] | None = None  # a batch's duplicate index (see seen_interchanges)
    seen_content: dict[tuple[str, str], list[Arrival]] | None = None  # and its resend index (seen_contents)

    def stage(self, table: Any, row: dict[str, Any]) -> None:
        """Queue a row for its table; :meth:`flush_staged` inserts each table's rows at once."""
        self.staged.setdefault(table, []).append(row)

    def flush_staged(self) -> None:
        """Insert every staged row (one statement on PostgreSQL); note the ack outbox entries."""
        batches = [(table, self.staged.pop(table, [])) for table in _TABLE_ORDER]
        has_outbox = bool(batches[-1][1])
        entries = insert_tables(self.session, batches, returning=("id", "message_id") if has_outbox else ())
        self.outcome.send_entries.extend((entry.id, entry.message_id) for entry in entries)


def flush_together(session: Session, writers: Sequence[Writer]) -> None:
    """Insert every writer's staged rows in one go; each ack's outbox entry goes back to its writer."""
    batches = [(table, [row for w in writers for row in w.staged.pop(table, [])]) for table in _TABLE_ORDER]
    has_outbox = bool(batches[-1][1])
    entries = insert_tables(session, batches, returning=("id", "message_id") if has_outbox else ())
    owners = {ack_id: w for w in writers for ack_id in w.outcome.ack_message_ids}
    for entry in entries:
        owners[entry.message_id].outcome.send_entries.append((entry.id, entry.message_id))
