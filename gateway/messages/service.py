"""The archive service: search, message and document views, raw bytes, timeline, replay.

Every function takes the caller's session and never commits. ``partner_scope`` is the
partner of a partner-scoped API key (None for internal roles): such a caller only ever sees
that partner's rows; reading another partner's row raises ``AccessDenied``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.archive.blob_store import CHUNK_SIZE, BlobNotFound, BlobStore
from gateway.messages import _chain, _query, _tree
from gateway.messages.cursor import EventCursor, MessageCursor
from gateway.messages.errors import (
    AccessDenied,
    ArchiveContentMissing,
    DocumentNotFound,
    MessageNotFound,
    ReplayNotAllowed,
)
from gateway.messages.schemas import (
    DEFAULT_TIMELINE_SIZE,
    AcknowledgmentView,
    ControlNumberPolicy,
    DocumentDetail,
    DocumentLineage,
    GroupLink,
    InterchangeLink,
    MessageDetail,
    MessageLink,
    MessagePage,
    MessageQuery,
    MessageSummary,
    Timeline,
    TimelineEvent,
    TransactionLink,
)
from gateway.store.enums import Direction, MessageStatus, Transport
from gateway.store.events import append_message_event
from gateway.store.models import (
    Delivery,
    Document,
    Event,
    FunctionalGroup,
    Interchange,
    Message,
    PartnerProfileVersion,
    TransactionSet,
)
from gateway.store.outbox import add_outbox_entry

PROCESS_MESSAGE_TASK = "process_message"
SEND_MESSAGE_TASK = "send_message"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _check_scope(partner_id: str | None, partner_scope: str | None) -> None:
    if partner_scope is not None and partner_id != partner_scope:
        raise AccessDenied("this row belongs to another partner")


def _load_message(session: Session, message_id: uuid.UUID, partner_scope: str | None) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise MessageNotFound(f"message {message_id} not found")
    _check_scope(message.partner_id, partner_scope)
    return message


def search_messages(
    session: Session, query: MessageQuery, *, partner_scope: str | None = None
) -> MessagePage:
    """One page of messages matching every filter of ``query``, newest first."""
    dialect = session.get_bind().dialect.name
    statement = _query.message_page_statement(query, dialect_name=dialect, partner_scope=partner_scope)
    rows = session.scalars(statement).all()
    page, more = rows[: query.limit], len(rows) > query.limit
    next_cursor = MessageCursor(page[-1].received_at, page[-1].id).encode() if more else None
    return MessagePage(items=[MessageSummary.model_validate(row) for row in page], next=next_cursor)


def get_message(
    session: Session, message_id: uuid.UUID, *, partner_scope: str | None = None
) -> MessageDetail:
    """A message with its envelope tree, documents, acknowledgment status, errors and replays."""
    message = _load_message(session, message_id, partner_scope)
    tree = _tree.MessageTree(session, message)
    replays = session.scalars(
        select(Message.id).where(Message.replay_of_id == message.id).order_by(Message.received_at)
    ).all()
    summary = MessageSummary.model_validate(message)
    return MessageDetail(
        **summary.model_dump(),
        receipt_sha256=message.receipt_sha256,
        interchanges=tree.interchange_views(),
        documents=tree.document_summaries(),
        acknowledgment=AcknowledgmentView(
            status=message.ack_status, expectations=_tree.ack_expectations(session, message_id=message.id)
        ),
        errors=tree.errors(message),
        replays=list(replays),
    )


@dataclass
class RawContent:
    """A message's archived bytes, opened for streaming, with what the response headers need."""

    handle: BinaryIO
    sha256: str
    size: int
    content_type: str
    filename: str

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The bytes in chunks; the file is closed when the iteration ends or is abandoned."""
        with self.handle:
            while chunk := self.handle.read(chunk_size):
                yield chunk

    def etag(self) -> str:
        """A strong ETag: the content hash."""
        return f'"{self.sha256}"'

    def headers(self) -> dict[str, str]:
        """Length, digests (RFC 3230 ``Digest`` and RFC 9530 ``Repr-Digest``), ETag and filename."""
        digest = base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")
        return {
            "Content-Length": str(self.size),
            "ETag": self.etag(),
            "Digest": f"sha-256={digest}",
            "Repr-Digest": f"sha-256=:{digest}:",
            "Content-Disposition": f'attachment; filename="{self.filename}"',
            "Cache-Control": "private, max-age=31536000, immutable",
        }

    def close(self) -> None:
        """Close the file without streaming it (e.g. for a 304)."""
        self.handle.close()


def _safe_filename(message: Message) -> str:
    name = (message.filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    cleaned = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "._-"))
    return cleaned or f"{message.id}.edi"


def open_raw_content(
    session: Session, blobs: BlobStore, message_id: uuid.UUID, *, partner_scope: str | None = None
) -> RawContent:
    """Open a message's archived bytes for streaming (the caller iterates or closes them)."""
    message = _load_message(session, message_id, partner_scope)
    try:
        handle = blobs.open(message.content_sha256)
    except BlobNotFound:
        raise ArchiveContentMissing(f"the archived bytes of message {message_id} are missing") from None
    return RawContent(
        handle=handle,
        sha256=message.content_sha256,
        size=message.size,
        content_type=message.content_type or DEFAULT_CONTENT_TYPE,
        filename=_safe_filename(message),
    )


def _related_correlation_ids(session: Session, message: Message) -> set[str]:
    document_ids = select(Document.id).where(Document.message_id == message.id)
    ids = {message.correlation_id}
    ids.update(session.scalars(select(Document.correlation_id).where(Document.message_id == message.id)))
    ids.update(
        session.scalars(
            select(Delivery.correlation_id).where(
                or_(Delivery.message_id == message.id, Delivery.document_id.in_(document_ids))
            )
        )
    )
    return ids


def message_timeline(
    session: Session,
    message_id: uuid.UUID,
    *,
    partner_scope: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_TIMELINE_SIZE,
) -> Timeline:
    """The message's events and those of its documents and deliveries, in chain order."""
    message = _load_message(session, message_id, partner_scope)
    correlation_ids = _related_correlation_ids(session, message)
    statement = select(Event).where(
        or_(Event.message_id == message.id, Event.correlation_id.in_(correlation_ids))
    )
    if partner_scope is not None:
        statement = statement.where(or_(Event.partner_id.is_(None), Event.partner_id == partner_scope))
    if cursor:
        statement = statement.where(Event.id > EventCursor.decode(cursor).after_id)
    rows = session.scalars(statement.order_by(Event.id).limit(limit + 1)).all()
    page, more = rows[:limit], len(rows) > limit
    check = _chain.check_events(session, page)
    return Timeline(
        message_id=message.id,
        items=[TimelineEvent.model_validate(row) for row in page],
        next=EventCursor(page[-1].id).encode() if more else None,
        chain_verified=not check.breaks,
        chain_check=check,
    )



def _profile_sha256(session: Session, document: Document) -> str | None:
    if document.profile_version is None:
        return None
    return session.scalar(
        select(PartnerProfileVersion.profile_sha256).where(
            PartnerProfileVersion.partner_id == document.partner_id,
            PartnerProfileVersion.version == document.profile_version,
        )
    )


def _interchange_link(interchange: Interchange) -> InterchangeLink:
    return InterchangeLink(
        id=interchange.id,
        control_number=interchange.control_number,
        sender=_tree.party(interchange.sender_qualifier, interchange.sender_id),
        receiver=_tree.party(interchange.receiver_qualifier, interchange.receiver_id),
        version=interchange.version,
        status=interchange.status,
    )


def _lineage(session: Session, document: Document) -> DocumentLineage:
    transaction = session.get(TransactionSet, document.transaction_id) if document.transaction_id else None
    group = session.get(FunctionalGroup, transaction.group_id) if transaction else None
    interchange = session.get(Interchange, group.interchange_id) if group else None
    message_id = document.message_id or (interchange.message_id if interchange else None)
    message = session.get(Message, message_id) if message_id else None
    expectations = _tree.ack_expectations(session, group_id=group.id) if group else []
    return DocumentLineage(
        message=MessageLink.model_validate(message) if message else None,
        interchange=_interchange_link(interchange) if interchange else None,
        group=GroupLink.model_validate(group) if group else None,
        transaction=TransactionLink.model_validate(transaction) if transaction else None,
        deliveries=_tree.delivery_views(session, document.id),
        ack_expectation=expectations[0] if expectations else None,
    )


def get_document(
    session: Session, document_id: uuid.UUID, *, partner_scope: str | None = None
) -> DocumentDetail:
    """A canonical document with its profile version, references and lineage."""
    document = session.get(Document, document_id)
    if document is None:
        raise DocumentNotFound(f"document {document_id} not found")
    _check_scope(document.partner_id, partner_scope)
    references = _tree.references_by_document(session, [document.id])
    return DocumentDetail(
        id=document.id,
        partner_id=document.partner_id,
        document_type=document.document_type,
        direction=document.direction,
        status=document.status,
        business_reference=document.business_reference,
        profile_version=document.profile_version,
        profile_sha256=_profile_sha256(session, document),
        correlation_id=document.correlation_id,
        created_at=document.created_at,
        references=references.get(document.id, []),
        data=document.data,
        lineage=_lineage(session, document),
    )


def replay_message(
    session: Session,
    message_id: uuid.UUID,
    *,
    actor: str,
    duplicate_check: bool,
    send_acks: bool,
    control_numbers: ControlNumberPolicy | None = None,
) -> uuid.UUID:
    """Queue the archived bytes again as a new message linked to the original; its id."""
    original = _load_message(session, message_id, None)
    inbound = original.direction is Direction.INBOUND
    if inbound and control_numbers is not None:
        raise ReplayNotAllowed("control_numbers applies to outbound messages only")
    policy = None if inbound else (control_numbers or "new")
    replay = Message(
        direction=original.direction,
        transport=Transport.REPLAY,
        partner_id=original.partner_id,
        status=MessageStatus.RECEIVED if inbound else MessageStatus.QUEUED,
        content_sha256=original.content_sha256,
        size=original.size,
        content_type=original.content_type,
        filename=original.filename,
        correlation_id=uuid.uuid4().hex,
        replay_of_id=original.id,
    )
    session.add(replay)
    session.flush()
    options = {"duplicate_check": duplicate_check, "send_acks": send_acks, "control_numbers": policy}
    add_outbox_entry(
        session,
        task_name=PROCESS_MESSAGE_TASK if inbound else SEND_MESSAGE_TASK,
        message_id=replay.id,
        task_args={"message_id": str(replay.id), "replay_of_id": str(original.id), **options},
    )
    for message, data in (
        (original, {"replay_message_id": str(replay.id), **options}),
        (replay, {"replay_of_id": str(original.id), **options}),
    ):
        append_message_event(
            session,
            message,
            event_type="message.replayed",
            actor=actor,
            data=data,
        )
    return replay.id
