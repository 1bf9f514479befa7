"""automated decisions and their human reviews

Each automated decision about a member as made (inputs, result, factors, model), and what a review
adds to its rights request (the decision contested, the member's statement, the verdict).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 18:26:39.752596
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "compliance_adm_decision",
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("made_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    with op.batch_alter_table("compliance_adm_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_adm_decision_member"), ["member"], unique=False)

    op.create_table(
        "compliance_adm_review",
        sa.Column("dsr_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("decision_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("changed_to", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        sa.Column("reviewer", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("dsr_id"),
    )
    with op.batch_alter_table("compliance_adm_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_adm_review_decision_id"), ["decision_id"], unique=True)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("compliance_adm_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_adm_review_decision_id"))
    op.drop_table("compliance_adm_review")
    with op.batch_alter_table("compliance_adm_decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_adm_decision_member"))
    op.drop_table("compliance_adm_decision")
