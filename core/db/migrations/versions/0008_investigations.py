"""Investigations (the durable queue and the receipts).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "investigations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=True),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.Column("subject", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_investigations")),
    )
    for column in ("status", "priority", "alert_id", "case_id", "created_at"):
        op.create_index(op.f(f"ix_investigations_{column}"), "investigations", [column])


def downgrade() -> None:
    op.drop_table("investigations")
