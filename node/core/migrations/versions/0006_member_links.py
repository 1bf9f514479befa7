"""member links

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:05:17.119584
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "link_code",
        sa.Column("code_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("peer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_sha256"),
    )
    op.create_table(
        "member_link",
        sa.Column("link_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("peer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("linked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("unlinked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("link_id"),
    )
    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_link_member"), ["member"], unique=False)


def downgrade() -> None:
    """Revert this revision."""

    with op.batch_alter_table("member_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_link_member"))

    op.drop_table("member_link")
    op.drop_table("link_code")
