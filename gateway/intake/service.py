"""Intake: the one function every transport calls before it tells a partner "received".

Order matters: the bytes are archived (streamed, fsynced) first; then ONE transaction writes
the blob's catalogue row, the message row, its outbox entry and the ``message.received``
event; only then is the task published. A crash before the commit leaves at most an
unreferenced blob (harmless, content-addressed); a lost publish is covered by the outbox
sweeper. Nothing received is lost once the caller has answered.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from gateway.archive.blob_store import BlobRef, BlobStore
from gateway.processing.publisher import OUTBOX_PROCESS_MESSAGE, PROCESS_MESSAGE, Publisher
from gateway.store.blobs import record_blobs
from gateway.store.core import insert_tables, run, table_of
from gateway.store.db import Database
from gateway.store.enums import Direction, MessageStatus, OutboxStatus, PartnerStatus, Transport
from gateway.store.events import MessageRef, append_message_event
from gateway.store.models import Message, OutboxEntry, Partner
from gateway.store.outbox import enqueued_row
from gateway.store.types import utcnow

_MESSAGES = table_of(Message)
_PARTNERS = table_of(Partner)
log = logging.getLogger("edigate.intake")
_OUTBOX = table_of(OutboxEntry)
# A doorbell that could not be rung: the outbox sweeper publishes the entries at its next pass.
_OUTBOX_DUE_NOW = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.status == OutboxStatus.ENQUEUED)
    .values(status=OutboxStatus.PENDING, next_attempt_at=bindparam("target_now"))
)
_PARTNER_GATE = select(_PARTNERS.c.status, _PARTNERS.c.deleted_at).where(
    _PARTNERS.c.id == bindparam("partner_id")
)


def default_lease() -> timedelta:
    """How long a published processing task may take before the sweeper publishes it again."""
    from gateway.processing.tuning import current_tuning

    return timedelta(seconds=current_tuning().task_lease_seconds)


class IntakeError(Exception):
    """A message cannot be accepted (nothing was recorded)."""


class UnknownPartner(IntakeError):
    """No active partner with that id."""


class PartnerSuspended(IntakeError):
    """The partner exists but is suspended: its messages are refused."""


@dataclass(frozen=True)
class Received:
    """What intake recorded: the message, its correlation id, its archived blob and outbox row."""

    message_id: uuid.UUID
    correlation_id: str
    blob: BlobRef
    outbox_id: int


def require_partner(session: Session, partner_id: str) -> None:
    """Pass when the partner may send messages; ``UnknownPartner``/``PartnerSuspended`` otherwise."""
    row = run(session, _PARTNER_GATE, {"partner_id": partner_id}).first()
    if row is None or row.deleted_at is not None:
        raise UnknownPartner(f"no partner {partner_id!r}")
    if row.status == PartnerStatus.SUSPENDED:
        raise PartnerSuspended(f"partner {partner_id!r} is suspended")


def record_received(
    session: Session,
    blob: BlobRef,
    *,
    partner_id: str,
    transport: Transport,
    content_type: str | None,
    filename: str | None = None,
    transport_message_id: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
    lease: timedelta | None = None,
    receipt: BlobRef | None = None,
    also_archived: Sequence[BlobRef] = (),
) -> Received:
    """Write the blob rows, message, outbox entry and event in the caller's transaction.

    ``receipt``: what the transport answered (an AS2 MDN), kept as the message's receipt;
    ``also_archived``: other blobs of the transfer (the raw AS2 request) to catalogue with it.
    """
    require_partner(session, partner_id)
    record_blobs(session, [blob, *also_archived, *([receipt] if receipt is not None else [])])
    now = utcnow()
    message = MessageRef(uuid.uuid4(), partner_id, correlation_id or uuid.uuid4().hex)
    message_row = {
        "id": message.id,
        "direction": Direction.INBOUND,
        "transport": transport,
        "partner_id": partner_id,
        "status": MessageStatus.RECEIVED,
        "content_sha256": blob.sha256,
        "size": blob.size,
        "content_type": content_type,
        "filename": filename,
        "transport_message_id": transport_message_id,
        "correlation_id": message.correlation_id,
        "received_at": now,
        "updated_at": now,
        "is_duplicate": False,
        "receipt_sha256": receipt.sha256 if receipt is not None else None,
    }
    # Published right after commit; if that publish is lost the sweeper takes over after the lease.
    outbox_row = enqueued_row(
        OUTBOX_PROCESS_MESSAGE, message.id, {"message_id": str(message.id)},
        now=now, lease=lease or default_lease(),
    )
    rows = [(_MESSAGES, [message_row]), (_OUTBOX, [outbox_row])]
    (entry,) = insert_tables(session, rows, returning=("id",))
    append_message_event(
        session,
        message,
        event_type="message.received",
        actor=actor,
        data={
            "sha256": blob.sha256,
            "size": blob.size,
            "transport": transport.value,
            "content_type": content_type,
            "filename": filename,
            "transport_message_id": transport_message_id,
        },
    )
    return Received(message.id, message.correlation_id, blob, entry.id)


def publish_received(db: Database, publisher: Publisher | None, received: Received) -> bool:
    """Ring the doorbell for a recorded message; on failure make its outbox row due at once."""
    return publish_received_many(db, publisher, [received])


def publish_received_many(db: Database, publisher: Publisher | None, received: Sequence[Received]) -> bool:
    """Ring ONE doorbell for recorded messages (a worker processes them together); on failure make
    their outbox rows due at once, for the sweeper's next pass."""
    if publisher is None or not received:
        return False
    args: dict[str, object] = {"message_ids": [str(r.message_id) for r in received]}
    if len(received) == 1:  # the one-message spelling, which names the outbox entry too
        args = {"message_id": str(received[0].message_id), "outbox_id": received[0].outbox_id}
    if publisher.publish(PROCESS_MESSAGE, args):
        return True
    try:
        with db.unit_of_work() as session:
            run(session, _OUTBOX_DUE_NOW, {"ids": [r.outbox_id for r in received], "target_now": utcnow()})
    except Exception:  # the sweeper still publishes them once their lease runs out
        log.warning("cannot make the outbox entries of %s due now", [r.message_id for r in received])
    return False


def receive(
    db: Database,
    blobs: BlobStore,
    *,
    partner_id: str,
    transport: Transport,
    body: bytes | Iterable[bytes],
    content_type: str | None,
    filename: str | None = None,
    transport_message_id: str | None = None,
    correlation_id: str | None = None,
    max_bytes: int | None = None,
    actor: str | None = None,
    publisher: Publisher | None = None,
    lease: timedelta | None = None,
) -> Received:
    """Archive ``body`` (streamed), record it in one transaction, then enqueue processing."""
    with db.unit_of_work(read_only=True) as session:
        require_partner(session, partner_id)
    chunks: Iterable[bytes] = [body] if isinstance(body, bytes) else body
    blob = blobs.put_stream(chunks, max_bytes=max_bytes)
    return receive_archived(
        db,
        blob,
        partner_id=partner_id,
        transport=transport,
        content_type=content_type,
        filename=filename,
        transport_message_id=transport_message_id,
        correlation_id=correlation_id,
        actor=actor,
        publisher=publisher,
        lease=lease,
    )


def receive_archived(
    db: Database,
    blob: BlobRef,
    *,
    partner_id: str,
    transport: Transport,
    content_type: str | None,
    filename: str | None = None,
    transport_message_id: str | None = None,
    correlation_id: str | None = None,
    actor: str | None = None,
    publisher: Publisher | None = None,
    lease: timedelta | None = None,
) -> Received:
    """Record an already archived blob as a received message and enqueue its processing."""
    with db.unit_of_work() as session:
        received = record_received(
            session,
            blob,
            partner_id=partner_id,
            transport=transport,
            content_type=content_type,
            filename=filename,
            transport_message_id=transport_message_id,
            correlation_id=correlation_id,
            actor=actor,
            lease=lease,
        )
    publish_received(db, publisher, received)
    return received
