"""Outbound acknowledgments per transaction set, and business-deadline alerts.

``ack_expectations`` gains ``transaction_id``/``set_id``/``transaction_control_number`` so a
997/999 reconciles each sent transaction set as well as its group (a row without
``transaction_id`` is the group's). ``group_id`` is therefore no longer unique; a set has at
most one expectation. ``deadline_alerts`` remembers which business-deadline alerts (855 due
after an 850, ASN before invoice, partner silent) were raised, so each is raised once.

Revision ID: 0007_acks
Revises: 0005_as2
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_acks"
down_revision: str | None = "0005_as2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("ack_expectations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transaction_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("set_id", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("transaction_control_number", sa.String(length=9), nullable=True))
        batch_op.drop_constraint("uq_ack_expectations_group_id", type_="unique")
        batch_op.create_index("ix_ack_expectations_group_id", ["group_id"], unique=False)
        batch_op.create_unique_constraint("uq_ack_expectations_transaction_id", ["transaction_id"])
        batch_op.create_foreign_key(
            "fk_ack_expectations_transaction_id_transaction_sets",
            "transaction_sets",
            ["transaction_id"],
            ["id"],
        )
        batch_op.create_index(
            "ix_ack_expectations_partner_interchange",
            ["partner_id", "interchange_control_number"],
            unique=False,
        )
    op.create_table(
        "deadline_alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_deadline_alerts_partner_id_partners"
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name="fk_deadline_alerts_document_id_documents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deadline_alerts"),
        sa.UniqueConstraint(
            "partner_id", "rule", "subject", "level", name="uq_deadline_alerts_partner_id_rule_subject_level"
        ),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("deadline_alerts")
    with op.batch_alter_table("ack_expectations", schema=None) as batch_op:
        batch_op.drop_index("ix_ack_expectations_partner_interchange")
        batch_op.drop_constraint("fk_ack_expectations_transaction_id_transaction_sets", type_="foreignkey")
        batch_op.drop_constraint("uq_ack_expectations_transaction_id", type_="unique")
        batch_op.drop_index("ix_ack_expectations_group_id")
        batch_op.create_unique_constraint("uq_ack_expectations_group_id", ["group_id"])
        batch_op.drop_column("transaction_control_number")
        batch_op.drop_column("set_id")
        batch_op.drop_column("transaction_id")
