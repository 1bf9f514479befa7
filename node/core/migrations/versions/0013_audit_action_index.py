"""audit action and time index

The new index is caught up from the log with the pseudonym index, from one watermark: both are
emptied here, so the first query after the upgrade rebuilds them together from the log.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 09:47:01.387913
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "compliance_audit_action",
        sa.Column("entry_index", sa.BigInteger(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("ts_utc", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("entry_index"),
    )
    with op.batch_alter_table("compliance_audit_action", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_audit_action_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_compliance_audit_action_ts_utc"), ["ts_utc"], unique=False)
    op.execute("DELETE FROM compliance_audit_subject")
    op.execute("DELETE FROM compliance_audit_index_mark")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("compliance_audit_action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_audit_action_ts_utc"))
        batch_op.drop_index(batch_op.f("ix_compliance_audit_action_action"))

    op.drop_table("compliance_audit_action")
