"""What a run of ``process_message`` yields: its outcome, the statuses that end a message, not found."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from gateway.processing.sending import SendPlan
from gateway.store.enums import MessageStatus

FINISHED = frozenset({MessageStatus.PROCESSED, MessageStatus.REJECTED, MessageStatus.FAILED})


class MessageNotFound(LookupError):
    """No message with that id."""


@dataclass
class ProcessOutcome:
    """What one run of ``process_message`` did."""

    message_id: uuid.UUID
    status: MessageStatus
    skipped: bool = False
    is_duplicate: bool = False
    duplicate_of: uuid.UUID | None = None
    document_ids: list[uuid.UUID] = field(default_factory=list)
    ack_message_ids: list[uuid.UUID] = field(default_factory=list)
    delivery_ids: list[uuid.UUID] = field(default_factory=list)
    send_entries: list[tuple[int, uuid.UUID]] = field(default_factory=list)
    error: str | None = None
    acks_stay_local: bool = False  # the acks go into the partner's hosted mailbox on this host
    ack_plans: list[SendPlan] = field(default_factory=list)  # what sending each ack needs
