"""audit subject index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:15:30.422088
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "compliance_audit_index_mark",
        sa.Column("log_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("indexed_upto", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log_name"),
    )
    op.create_table(
        "compliance_audit_subject",
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entry_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("member", "entry_index"),
    )


def downgrade() -> None:
    """Revert this revision."""

    op.drop_table("compliance_audit_subject")
    op.drop_table("compliance_audit_index_mark")
