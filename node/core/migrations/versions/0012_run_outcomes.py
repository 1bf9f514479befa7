"""run outcomes per brand

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:58:50.191603
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "run_outcome",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("auc_alone", sa.Float(), nullable=True),
        sa.Column("auc_together", sa.Float(), nullable=True),
        sa.Column("auc_served", sa.Float(), nullable=True),
        sa.Column("epsilon_spent", sa.Float(), nullable=True),
        sa.Column("epsilon_budget", sa.Float(), nullable=False),
        sa.Column("test_rows", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("run_outcome")
