"""The search's composable conditions: each filter is one condition on ``Message``.

Control-number filters become ``Message.id IN (subquery)``; the subqueries repeat the
partner (and direction) filters so PostgreSQL can use the ``(partner_id, …, control_number)``
indexes. Pages are keyset-ordered on ``(received_at, id)`` descending.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, or_, select

from gateway.messages._fulltext import full_text_condition
from gateway.messages.cursor import MessageCursor
from gateway.messages.schemas import MessageQuery
from gateway.store.models import (
    Document,
    DocumentReference,
    FunctionalGroup,
    Interchange,
    Message,
    TransactionSet,
)

ISA13_LENGTH = 9


def _interchange_numbers(value: str) -> list[str]:
    """ISA13 as typed and zero-padded to its fixed width (``42`` finds ``000000042``)."""
    padded = value.zfill(ISA13_LENGTH) if value.isdigit() else value
    return sorted({value, padded})


def _interchange_condition(query: MessageQuery, value: str) -> ColumnElement[bool]:
    sub = select(Interchange.message_id).where(Interchange.control_number.in_(_interchange_numbers(value)))
    if query.partner:
        sub = sub.where(Interchange.partner_id == query.partner)
    if query.direction:
        sub = sub.where(Interchange.direction == query.direction)
    return Message.id.in_(sub)


def _group_condition(query: MessageQuery, value: str) -> ColumnElement[bool]:
    sub = (
        select(Interchange.message_id)
        .join(FunctionalGroup, FunctionalGroup.interchange_id == Interchange.id)
        .where(FunctionalGroup.control_number == value)
    )
    if query.partner:
        sub = sub.where(FunctionalGroup.partner_id == query.partner)
    return Message.id.in_(sub)


def _transaction_condition(query: MessageQuery, value: str) -> ColumnElement[bool]:
    sub = (
        select(Interchange.message_id)
        .join(FunctionalGroup, FunctionalGroup.interchange_id == Interchange.id)
        .join(TransactionSet, TransactionSet.group_id == FunctionalGroup.id)
        .where(TransactionSet.control_number == value)
    )
    if query.partner:
        sub = sub.where(FunctionalGroup.partner_id == query.partner)
    return Message.id.in_(sub)


def _document_type_condition(document_type: str) -> ColumnElement[bool]:
    return Message.id.in_(select(Document.message_id).where(Document.document_type == document_type))


def _reference_condition(reference: str) -> ColumnElement[bool]:
    by_reference = select(Document.message_id).join(DocumentReference)
    return Message.id.in_(by_reference.where(DocumentReference.value == reference))


def message_conditions(
    query: MessageQuery, *, dialect_name: str, partner_scope: str | None = None
) -> list[ColumnElement[bool]]:
    """Every condition the query asks for, plus the caller's partner scope."""
    conditions: list[ColumnElement[bool]] = []
    if partner_scope is not None:
        conditions.append(Message.partner_id == partner_scope)
    if query.partner:
        conditions.append(Message.partner_id == query.partner)
    if query.direction:
        conditions.append(Message.direction == query.direction)
    if query.transport:
        conditions.append(Message.transport == query.transport)
    if query.status:
        conditions.append(Message.status == query.status)
    if query.ack_status:
        conditions.append(Message.ack_status == query.ack_status)
    if query.received_from:
        conditions.append(Message.received_at >= query.received_from)
    if query.received_to:
        conditions.append(Message.received_at < query.received_to)
    if query.document_type:
        conditions.append(_document_type_condition(query.document_type))
    if query.interchange_control_number:
        conditions.append(_interchange_condition(query, query.interchange_control_number))
    if query.group_control_number:
        conditions.append(_group_condition(query, query.group_control_number))
    if query.transaction_control_number:
        conditions.append(_transaction_condition(query, query.transaction_control_number))
    if query.reference:
        conditions.append(_reference_condition(query.reference))
    if query.q:
        conditions.append(full_text_condition(dialect_name, query.q))
    return conditions


def after_cursor(cursor: MessageCursor) -> ColumnElement[bool]:
    """Rows after ``cursor`` in newest-first order."""
    return or_(
        Message.received_at < cursor.received_at,
        and_(Message.received_at == cursor.received_at, Message.id < cursor.id),
    )


def message_page_statement(
    query: MessageQuery, *, dialect_name: str, partner_scope: str | None = None
) -> Select[Message]:
    """The statement for one page (one row more than ``limit``, to know if there is a next)."""
    conditions = message_conditions(query, dialect_name=dialect_name, partner_scope=partner_scope)
    if query.cursor:
        conditions.append(after_cursor(MessageCursor.decode(query.cursor)))
    return (
        select(Message)
        .where(*conditions)
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(query.limit + 1)
    )
