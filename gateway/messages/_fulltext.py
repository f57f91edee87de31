"""Full-text ``q`` over document data, document references and message error text.

PostgreSQL: ``to_tsvector('simple', …) @@ websearch_to_tsquery('simple', q)``, the exact
expressions of the GIN indexes of migration 0003 (for JSON, only string values are indexed).
SQLite: every term (a word or a "quoted phrase") must occur, case-insensitively, in one field
(LIKE); JSON is searched as stored, so non-ASCII terms only match on PostgreSQL.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, Text, and_, cast, literal_column, or_, select
from sqlalchemy.dialects.postgresql import ext as pg_ext

from gateway.store.models import Document, DocumentReference, Message

_TERM = re.compile(r'"([^"]+)"|(\S+)')
_SIMPLE = "'simple'::regconfig"


def search_terms(q: str) -> list[str]:
    """The words and quoted phrases of ``q`` (websearch operators dropped)."""
    terms = []
    for phrase, word in _TERM.findall(q):
        term = (phrase or word.lstrip("-")).strip()
        if term and term.lower() != "or":
            terms.append(term)
    return terms


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _all_terms_like(column: SQLColumnExpression[Any], terms: list[str]) -> ColumnElement[bool]:
    return and_(*(column.ilike(_like_pattern(term), escape="\\") for term in terms))


def _ts_matches(column: SQLColumnExpression[Any], q: str) -> ColumnElement[bool]:
    # The typed PostgreSQL constructs (plain ``func.to_tsvector`` does not compile in SQLAlchemy 2.1).
    to_tsvector: Any = pg_ext.to_tsvector
    websearch_to_tsquery: Any = pg_ext.websearch_to_tsquery
    config: ColumnElement[Any] = literal_column(_SIMPLE)
    vector: ColumnElement[Any] = to_tsvector(config, column)
    return vector.bool_op("@@")(websearch_to_tsquery(config, q))


def full_text_condition(dialect_name: str, q: str) -> ColumnElement[bool]:
    """A condition on ``Message`` true when ``q`` matches its documents, references or error."""
    if dialect_name == "postgresql":
        in_data = _ts_matches(Document.data, q)
        in_error = and_(Message.error.is_not(None), _ts_matches(Message.error, q))
        in_reference = DocumentReference.value == q.strip()
    else:
        terms = search_terms(q)
        if not terms:
            return Message.id.is_(None)  # nothing to look for: no match
        in_data = _all_terms_like(cast(Document.data, Text), terms)
        in_error = _all_terms_like(Message.error, terms)
        in_reference = _all_terms_like(DocumentReference.value, terms)
    by_data = select(Document.message_id).where(in_data)
    by_reference = select(Document.message_id).join(DocumentReference).where(in_reference)
    return or_(Message.id.in_(by_data), Message.id.in_(by_reference), in_error)
