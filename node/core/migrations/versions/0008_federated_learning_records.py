"""federated learning records

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:04:23.166591
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "global_model",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run", "round"),
    )
    op.create_table(
        "privacy_budget",
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("set_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose"),
    )
    op.create_table(
        "privacy_round",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("members_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run", "round"),
    )
    op.create_table(
        "privacy_run",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("noise_multiplier", sa.Float(), nullable=False),
        sa.Column("history_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run"),
    )
    with op.batch_alter_table("privacy_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_run_purpose"), ["purpose"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("privacy_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_run_purpose"))

    op.drop_table("privacy_run")
    op.drop_table("privacy_round")
    op.drop_table("privacy_budget")
    op.drop_table("global_model")
