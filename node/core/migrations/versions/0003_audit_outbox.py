"""audit outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:19:06.989089
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "compliance_audit_outbox",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("staged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    """Revert this revision."""

    op.drop_table("compliance_audit_outbox")
