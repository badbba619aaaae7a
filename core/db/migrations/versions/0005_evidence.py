"""Evidence items and their hash-chained ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ledger_length", sa.Integer(), nullable=False),
        sa.Column("ledger_head", sa.String(64), nullable=False),
        sa.Column("purged_at", TS, nullable=True),
        sa.Column("purged_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_evidence_items_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_items")),
    )
    op.create_index(op.f("ix_evidence_items_case_id"), "evidence_items", ["case_id"])
    op.create_index(op.f("ix_evidence_items_sha256"), "evidence_items", ["sha256"])
    op.create_table(
        "evidence_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evidence_id", sa.String(32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_id"],
            ["evidence_items.id"],
            name=op.f("fk_evidence_ledger_evidence_id_evidence_items"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_ledger")),
        sa.UniqueConstraint("evidence_id", "sequence", name=op.f("uq_evidence_ledger_evidence_id")),
    )
    op.create_index(op.f("ix_evidence_ledger_evidence_id"), "evidence_ledger", ["evidence_id"])


def downgrade() -> None:
    op.drop_table("evidence_ledger")
    op.drop_table("evidence_items")
