"""Loading a message's envelope tree and a document's lineage in a few set-based queries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.messages.schemas import (
    AckExpectationView,
    DeliveryAttemptView,
    DeliveryView,
    DocumentSummary,
    ErrorView,
    GroupView,
    InterchangeParty,
    InterchangeView,
    ReferenceView,
    TransactionView,
)
from gateway.store.models import (
    AckExpectation,
    Delivery,
    DeliveryAttempt,
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    TransactionSet,
    WebhookEndpoint,
)


def references_by_document(
    session: Session, document_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ReferenceView]]:
    """Each document's references, ordered by qualifier then value."""
    found: dict[uuid.UUID, list[ReferenceView]] = defaultdict(list)
    if not document_ids:
        return found
    rows = session.scalars(
        select(DocumentReference)
        .where(DocumentReference.document_id.in_(document_ids))
        .order_by(DocumentReference.qualifier, DocumentReference.value)
    )
    for row in rows:
        found[row.document_id].append(ReferenceView.model_validate(row))
    return found


def document_summary(document: Document, references: list[ReferenceView]) -> DocumentSummary:
    """The list shape of a document."""
    summary = DocumentSummary.model_validate(document)
    summary.references = references
    return summary


def party(qualifier: str, ident: str) -> InterchangeParty:
    """An ISA sender/receiver as qualifier and (trimmed) id."""
    return InterchangeParty(qualifier=qualifier, id=ident.strip())


class MessageTree:
    """The interchanges, groups, transactions and documents of one message."""

    def __init__(self, session: Session, message: Message) -> None:
        self.interchanges = session.scalars(
            select(Interchange).where(Interchange.message_id == message.id).order_by(Interchange.position)
        ).all()
        interchange_ids = [row.id for row in self.interchanges]
        self.groups = session.scalars(
            select(FunctionalGroup)
            .where(FunctionalGroup.interchange_id.in_(interchange_ids))
            .order_by(FunctionalGroup.position)
        ).all() if interchange_ids else []
        group_ids = [row.id for row in self.groups]
        self.transactions = session.scalars(
            select(TransactionSet).where(TransactionSet.group_id.in_(group_ids)).order_by(TransactionSet.position)
        ).all() if group_ids else []
        transaction_ids = [row.id for row in self.transactions]
        document_filter = Document.message_id == message.id
        if transaction_ids:
            document_filter = or_(document_filter, Document.transaction_id.in_(transaction_ids))
        self.documents = session.scalars(
            select(Document).where(document_filter).order_by(Document.created_at, Document.id)
        ).all()
        self.references = references_by_document(session, [row.id for row in self.documents])

    def document_summaries(self) -> list[DocumentSummary]:
        """Every document of the message."""
        return [document_summary(doc, self.references.get(doc.id, [])) for doc in self.documents]

    def interchange_views(self) -> list[InterchangeView]:
        """The nested envelope tree, each transaction with its document."""
        by_transaction = {doc.transaction_id: doc for doc in self.documents if doc.transaction_id}
        transactions: dict[uuid.UUID, list[TransactionView]] = defaultdict(list)
        for tx in self.transactions:
            view = TransactionView.model_validate(tx)
            doc = by_transaction.get(tx.id)
            view.document = document_summary(doc, self.references.get(doc.id, [])) if doc else None
            transactions[tx.group_id].append(view)
        groups: dict[uuid.UUID, list[GroupView]] = defaultdict(list)
        for group in self.groups:
            group_view = GroupView.model_validate(group)
            group_view.transactions = transactions.get(group.id, [])
            groups[group.interchange_id].append(group_view)
        return [
            InterchangeView(
                id=row.id,
                position=row.position,
                sender=party(row.sender_qualifier, row.sender_id),
                receiver=party(row.receiver_qualifier, row.receiver_id),
                control_number=row.control_number,
                version=row.version,
                usage_indicator=row.usage_indicator,
                ack_requested=row.ack_requested,
                interchange_date=row.interchange_date,
                status=row.status,
                is_duplicate=row.is_duplicate,
                duplicate_of_id=row.duplicate_of_id,
                groups=groups.get(row.id, []),
            )
            for row in self.interchanges
        ]

    def errors(self, message: Message) -> list[ErrorView]:
        """The message's readable error, then every transaction error with its location."""
        found: list[ErrorView] = []
        if message.error:
            found.append(ErrorView(level="message", error=message.error))
        groups = {row.id: row for row in self.groups}
        interchanges = {row.id: row for row in self.interchanges}
        for tx in self.transactions:
            group = groups[tx.group_id]
            interchange = interchanges[group.interchange_id]
            for error in tx.errors or []:
                found.append(
                    ErrorView(
                        level="transaction",
                        interchange_control_number=interchange.control_number,
                        group_control_number=group.control_number,
                        transaction_control_number=tx.control_number,
                        transaction_id=tx.id,
                        error=error,
                    )
                )
        return found


def ack_expectations(session: Session, *, message_id: uuid.UUID | None = None,
                     group_id: uuid.UUID | None = None) -> list[AckExpectationView]:
    """The acknowledgments expected for a sent message (or one of its groups)."""
    statement = select(AckExpectation).order_by(AckExpectation.created_at, AckExpectation.id)
    if message_id is not None:
        statement = statement.where(AckExpectation.message_id == message_id)
    if group_id is not None:
        statement = statement.where(AckExpectation.group_id == group_id)
    return [AckExpectationView.model_validate(row) for row in session.scalars(statement)]


def delivery_views(session: Session, document_id: uuid.UUID) -> list[DeliveryView]:
    """The document's webhook deliveries with their attempts (endpoint name, never its secret)."""
    deliveries = session.scalars(
        select(Delivery).where(Delivery.document_id == document_id).order_by(Delivery.created_at, Delivery.id)
    ).all()
    if not deliveries:
        return []
    ids = [row.id for row in deliveries]
    attempts: dict[uuid.UUID, list[DeliveryAttemptView]] = defaultdict(list)
    for attempt in session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)).order_by(DeliveryAttempt.id)
    ):
        attempts[attempt.delivery_id].append(DeliveryAttemptView.model_validate(attempt))
    endpoint_ids = {row.endpoint_id for row in deliveries}
    names: dict[uuid.UUID, str] = {
        ident: name
        for ident, name in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.name).where(WebhookEndpoint.id.in_(endpoint_ids))
        )
    }
    return [
        DeliveryView(
            id=row.id,
            webhook_id=row.webhook_id,
            endpoint_id=row.endpoint_id,
            endpoint_name=names.get(row.endpoint_id),
            event_type=row.event_type,
            status=row.status,
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at,
            give_up_at=row.give_up_at,
            delivered_at=row.delivered_at,
            redelivery_of_id=row.redelivery_of_id,
            created_at=row.created_at,
            attempts=attempts.get(row.id, []),
        )
        for row in deliveries
    ]
