"""exchanges

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 11:47:09.104933
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "exchange_in",
        sa.Column("exchange_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("quote", sa.Text(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("exchange_id"),
    )
    op.create_table(
        "exchange_out",
        sa.Column("exchange_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("destination", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("quote_sig", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("exchange_id"),
    )
    with op.batch_alter_table("exchange_out", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchange_out_member"), ["member"], unique=False)
        batch_op.create_index(batch_op.f("ix_exchange_out_state"), ["state"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("exchange_out", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_out_state"))
        batch_op.drop_index(batch_op.f("ix_exchange_out_member"))

    op.drop_table("exchange_out")
    op.drop_table("exchange_in")
