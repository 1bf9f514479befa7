"""exchange receipts and log positions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 14:22:39.181056
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("exchange_in", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quote_sig", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("logged_index", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("exchange_out", schema=None) as batch_op:
        batch_op.add_column(sa.Column("destination_sig", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("logged_index", sa.BigInteger(), nullable=True))

    with op.batch_alter_table("link_code", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_ref_sealed", sa.Text(), nullable=True))

    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_ref_sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.drop_column("member_ref_sealed")

    with op.batch_alter_table("link_code", schema=None) as batch_op:
        batch_op.drop_column("member_ref_sealed")

    with op.batch_alter_table("exchange_out", schema=None) as batch_op:
        batch_op.drop_column("logged_index")
        batch_op.drop_column("destination_sig")

    with op.batch_alter_table("exchange_in", schema=None) as batch_op:
        batch_op.drop_column("logged_index")
        batch_op.drop_column("link_id")
        batch_op.drop_column("quote_sig")
