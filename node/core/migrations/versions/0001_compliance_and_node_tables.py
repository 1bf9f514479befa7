"""compliance and node tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 11:09:10.242711
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""

    op.create_table(
        "compliance_consent",
        sa.Column("consent_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose_code", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("notice_version", sa.Integer(), nullable=False),
        sa.Column("notice_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=False),
        sa.Column("collection_method", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("compliance_consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_consent_member"), ["member"], unique=False)

    op.create_table(
        "compliance_dsr",
        sa.Column("dsr_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dsr_id"),
    )
    with op.batch_alter_table("compliance_dsr", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_dsr_member"), ["member"], unique=False)

    op.create_table(
        "compliance_dsr_step",
        sa.Column("dsr_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reason_code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.PrimaryKeyConstraint("dsr_id", "step"),
    )
    op.create_table(
        "compliance_feature",
        sa.Column("feature", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("pia_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("changed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("changed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("feature"),
    )
    op.create_table(
        "compliance_legal_hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("placed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("placed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("released_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("compliance_legal_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_legal_hold_member"), ["member"], unique=False)

    op.create_table(
        "compliance_member",
        sa.Column("ref_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ref_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("birth_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("guardian_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("guardian_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ref_index"),
    )
    with op.batch_alter_table("compliance_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_member_guardian_index"), ["guardian_index"], unique=False)

    op.create_table(
        "compliance_member_key",
        sa.Column("ref_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ref_index"),
    )
    op.create_table(
        "compliance_notice",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "compliance_pia",
        sa.Column("pia_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("approver", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("approved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pia_id"),
    )
    op.create_table(
        "compliance_prompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose_code", sqlmodel.sql.sqltypes.AutoString(length=250), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("compliance_prompt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_prompt_member"), ["member"], unique=False)

    op.create_table(
        "compliance_xborder_mechanism",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
        sa.Column("mechanism", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("compliance_xborder_mechanism", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compliance_xborder_mechanism_country"), ["country"], unique=False)

    op.create_table(
        "compliance_xborder_subject",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("member", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("year", "member", "sensitive"),
    )
    op.create_table(
        "node_staff_key",
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:
    """Revert this revision."""

    op.drop_table("node_staff_key")
    op.drop_table("compliance_xborder_subject")
    with op.batch_alter_table("compliance_xborder_mechanism", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_xborder_mechanism_country"))

    op.drop_table("compliance_xborder_mechanism")
    with op.batch_alter_table("compliance_prompt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_prompt_member"))

    op.drop_table("compliance_prompt")
    op.drop_table("compliance_pia")
    op.drop_table("compliance_notice")
    op.drop_table("compliance_member_key")
    with op.batch_alter_table("compliance_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_member_guardian_index"))

    op.drop_table("compliance_member")
    with op.batch_alter_table("compliance_legal_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_legal_hold_member"))

    op.drop_table("compliance_legal_hold")
    op.drop_table("compliance_feature")
    op.drop_table("compliance_dsr_step")
    with op.batch_alter_table("compliance_dsr", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_dsr_member"))

    op.drop_table("compliance_dsr")
    with op.batch_alter_table("compliance_consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_consent_member"))

    op.drop_table("compliance_consent")
