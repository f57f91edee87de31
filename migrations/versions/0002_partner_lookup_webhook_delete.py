"""Partners: the current profile's interchange id as indexed columns (inbound sender lookup);
webhook endpoints: ``deleted_at`` for soft deletion (deliveries keep their endpoint).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("interchange_qualifier", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("interchange_id", sa.String(length=15), nullable=True))
        batch_op.create_index(
            "ix_partners_interchange", ["interchange_qualifier", "interchange_id"], unique=True
        )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_index("ix_partners_interchange")
        batch_op.drop_column("interchange_id")
        batch_op.drop_column("interchange_qualifier")
