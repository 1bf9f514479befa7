"""peer nonces kept for the signature window; purchases once per node; member token generations

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:24:24.400835

``purchase`` is filled from the journal: every earn whose ref is ``purchase:<id>``, without its
amount (the journal keeps points, not fen). Where two members' entries carry the same purchase id
(allowed before: ids were unique per member), the one recorded first keeps the id.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BACKFILL = """
INSERT INTO purchase (purchase_id, member, amount_fen, day, entry_id, at)
SELECT substr(ref, 10), member, NULL, earned_on, entry_id, at
FROM (
  SELECT e.ref, e.member, l.earned_on, e.entry_id, e.at,
         ROW_NUMBER() OVER (PARTITION BY e.ref ORDER BY e.at, e.entry_id) AS nth
  FROM wallet_entry e JOIN wallet_lot l ON l.entry_id = e.entry_id
  WHERE e.ref LIKE 'purchase:%'
) earns
WHERE nth = 1
"""


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "peer_nonce",
        sa.Column("peer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("peer", "nonce"),
    )
    with op.batch_alter_table("peer_nonce", schema=None) as batch_op:
        batch_op.create_index("ix_peer_nonce_peer_created", ["peer", "created_at"], unique=False)
    op.create_table(
        "purchase",
        sa.Column("purchase_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id"),
    )
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purchase_member"), ["member"], unique=False)
    op.execute(_BACKFILL)
    op.create_table(
        "member_token_generation",
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("member_token_generation")
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchase_member"))
    op.drop_table("purchase")
    with op.batch_alter_table("peer_nonce", schema=None) as batch_op:
        batch_op.drop_index("ix_peer_nonce_peer_created")
    op.drop_table("peer_nonce")
