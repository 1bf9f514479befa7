"""members' phone numbers; vertical runs, scores and alignments

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:42:33.173720
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "vertical_alignment",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("align_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("peer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run", "align_id"),
    )
    with op.batch_alter_table("vertical_alignment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vertical_alignment_member"), ["member"], unique=False)

    op.create_table(
        "vertical_run",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("label_holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("partners_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("auc_alone", sa.Float(), nullable=True),
        sa.Column("auc_vertical", sa.Float(), nullable=True),
        sa.Column("contributions_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("used_json", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run"),
    )
    with op.batch_alter_table("vertical_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vertical_run_at"), ["at"], unique=False)

    op.create_table(
        "vertical_score",
        sa.Column("run", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run", "member"),
    )
    with op.batch_alter_table("compliance_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone_sealed", sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f("ix_compliance_member_phone_index"), ["phone_index"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("compliance_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_member_phone_index"))
        batch_op.drop_column("phone_sealed")
        batch_op.drop_column("phone_index")

    op.drop_table("vertical_score")
    with op.batch_alter_table("vertical_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vertical_run_at"))

    op.drop_table("vertical_run")
    with op.batch_alter_table("vertical_alignment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vertical_alignment_member"))

    op.drop_table("vertical_alignment")
