"""Approvals, the response-action ledger, and checkpoint retention of investigations.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("investigations", sa.Column("checkpoints_pruned_at", TS, nullable=True))
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("investigation_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("comment", sa.String(2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    for column in ("investigation_id", "status", "expires_at"):
        op.create_index(op.f(f"ix_approvals_{column}"), "approvals", [column])
    op.create_table(
        "response_actions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("investigation_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_response_actions")),
    )
    for column in ("investigation_id", "status", "created_at"):
        op.create_index(op.f(f"ix_response_actions_{column}"), "response_actions", [column])


def downgrade() -> None:
    op.drop_table("response_actions")
    op.drop_table("approvals")
    with op.batch_alter_table("investigations") as batch:
        batch.drop_column("checkpoints_pruned_at")
