"""SFTP transport: hosted accounts (slow password hashes, public keys, lockout), the server's
host keys (private halves encrypted, shared by every SFTP process), and poll state per partner.

Revision ID: 0004_sftp
Revises: 0003_archive_search
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sftp"
down_revision: str | None = "0003_archive_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "sftp_accounts",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("public_keys", sa.JSON(), nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name="fk_sftp_accounts_partner_id_partners"),
        sa.PrimaryKeyConstraint("username", name="pk_sftp_accounts"),
        sa.UniqueConstraint("partner_id", name="uq_sftp_accounts_partner_id"),
    )
    op.create_table(
        "sftp_host_keys",
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("algorithm", name="pk_sftp_host_keys"),
    )
    op.create_table(
        "sftp_poll_state",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_sftp_poll_state_partner_id_partners"
        ),
        sa.PrimaryKeyConstraint("partner_id", name="pk_sftp_poll_state"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("sftp_poll_state")
    op.drop_table("sftp_host_keys")
    op.drop_table("sftp_accounts")
