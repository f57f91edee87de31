"""Archive search indexes: newest-first message pages, replay lineage, and (PostgreSQL only)
GIN full-text indexes over document data and message error text.

``to_tsvector('simple', json)`` indexes only the JSON string values, so a search for a PO
number does not match every document through its key names. SQLite has no equivalent; the
search service falls back to LIKE there (see ``gateway.messages._fulltext``).

Revision ID: 0003_archive_search
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_archive_search"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Apply this revision."""
    op.create_index("ix_messages_received_at_id", "messages", ["received_at", "id"], unique=False)
    op.create_index("ix_messages_replay_of_id", "messages", ["replay_of_id"], unique=False)
    if _is_postgresql():
        op.create_index(
            "ix_messages_error_fts",
            "messages",
            [sa.text("to_tsvector('simple'::regconfig, error)")],
            postgresql_using="gin",
            postgresql_where=sa.text("error IS NOT NULL"),
        )
        op.create_index(
            "ix_documents_data_fts",
            "documents",
            [sa.text("to_tsvector('simple'::regconfig, data)")],
            postgresql_using="gin",
        )


def downgrade() -> None:
    """Revert this revision."""
    if _is_postgresql():
        op.drop_index("ix_documents_data_fts", table_name="documents")
        op.drop_index("ix_messages_error_fts", table_name="messages")
    op.drop_index("ix_messages_replay_of_id", table_name="messages")
    op.drop_index("ix_messages_received_at_id", table_name="messages")
