"""AS2 transport: our key pairs (private keys encrypted), partner certificates (rotation: several
per partner), per-partner interop options, and the AS2 exchange ledger (Message-ID, raw request
and MDN blobs, disposition, MIC, async-MDN state) used for duplicates and MDN matching.

Revision ID: 0005_as2
Revises: 0004_sftp
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_as2"
down_revision: str | None = "0004_sftp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "as2_key_pairs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("as2_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("private_key_ciphertext", sa.Text(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("serial_number", sa.String(length=80), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_as2_key_pairs")),
        sa.UniqueConstraint("fingerprint_sha256", name=op.f("uq_as2_key_pairs_fingerprint_sha256")),
    )
    op.create_index(op.f("ix_as2_key_pairs_as2_id"), "as2_key_pairs", ["as2_id"], unique=False)
    op.create_index(op.f("ix_as2_key_pairs_status"), "as2_key_pairs", ["status"], unique=False)
    op.create_table(
        "as2_partner_certificates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("usage", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("serial_number", sa.String(length=80), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_as2_partner_certificates_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_as2_partner_certificates")),
        sa.UniqueConstraint(
            "partner_id",
            "fingerprint_sha256",
            name=op.f("uq_as2_partner_certificates_partner_id_fingerprint_sha256"),
        ),
    )
    op.create_index(
        op.f("ix_as2_partner_certificates_partner_id"),
        "as2_partner_certificates",
        ["partner_id"],
        unique=False,
    )
    op.create_table(
        "as2_partner_options",
        sa.Column("partner_id", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_as2_partner_options_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_as2_partner_options")),
    )
    op.create_table(
        "as2_exchanges",
        sa.Column("id", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("partner_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("as2_message_id", sa.String(length=1000), nullable=False),
        sa.Column("as2_from", sa.String(length=128), nullable=False),
        sa.Column("as2_to", sa.String(length=128), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=True),
        sa.Column("mdn_sha256", sa.String(length=64), nullable=True),
        sa.Column("disposition", sa.String(length=200), nullable=True),
        sa.Column("mic", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("mdn_mode", sa.String(length=8), nullable=False),
        sa.Column("mdn_url", sa.String(length=2000), nullable=True),
        sa.Column("mdn_status", sa.String(length=16), nullable=True),
        sa.Column("mdn_attempts", sa.Integer(), nullable=False),
        sa.Column("mdn_next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_as2_exchanges_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_as2_exchanges_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["raw_sha256"], ["blobs.sha256"], name=op.f("fk_as2_exchanges_raw_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["mdn_sha256"], ["blobs.sha256"], name=op.f("fk_as2_exchanges_mdn_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_as2_exchanges")),
    )
    op.create_index(
        "ix_as2_exchanges_partner_direction_msgid",
        "as2_exchanges",
        ["partner_id", "direction", "as2_message_id"],
        unique=False,
    )
    op.create_index(
        "ix_as2_exchanges_mdn_due", "as2_exchanges", ["mdn_status", "mdn_next_attempt_at"], unique=False
    )
    op.create_index(op.f("ix_as2_exchanges_message_id"), "as2_exchanges", ["message_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("as2_exchanges")
    op.drop_table("as2_partner_options")
    op.drop_table("as2_partner_certificates")
    op.drop_table("as2_key_pairs")
