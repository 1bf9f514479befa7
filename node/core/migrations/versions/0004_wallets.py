"""wallets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 11:32:00.660042
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "wallet_account",
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("opened_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member"),
    )
    op.create_table(
        "wallet_allocation",
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("lot_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "lot_id"),
    )
    with op.batch_alter_table("wallet_allocation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_allocation_member"), ["member"], unique=False)

    op.create_table(
        "wallet_entry",
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.PrimaryKeyConstraint("entry_id"),
        sa.UniqueConstraint("member", "ref", name="uq_wallet_entry_member_ref"),
    )
    with op.batch_alter_table("wallet_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_entry_member"), ["member"], unique=False)

    op.create_table(
        "wallet_lot",
        sa.Column("lot_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("earned_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("lot_id"),
    )
    with op.batch_alter_table("wallet_lot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_lot_member"), ["member"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("wallet_lot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_lot_member"))

    op.drop_table("wallet_lot")
    with op.batch_alter_table("wallet_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_entry_member"))

    op.drop_table("wallet_entry")
    with op.batch_alter_table("wallet_allocation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_allocation_member"))

    op.drop_table("wallet_allocation")
    op.drop_table("wallet_account")
