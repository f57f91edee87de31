"""A rotated webhook secret keeps signing, beside the new one, for an overlap.

``webhook_endpoints`` gains ``previous_secret_ciphertext`` and ``previous_secret_until``: until
then every delivery carries a signature with each secret, so the ERP can switch whenever it is
ready within the overlap.

Revision ID: 0008_webhook_overlap
Revises: 0007_acks
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_webhook_overlap"
down_revision: str | None = "0007_acks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_ciphertext", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("previous_secret_until")
        batch_op.drop_column("previous_secret_ciphertext")
