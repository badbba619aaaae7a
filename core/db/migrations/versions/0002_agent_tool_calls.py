"""Agent tool calls.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_tool_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("investigation_id", sa.String(128), nullable=True),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("result_summary", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_tool_calls")),
    )
    op.create_index(op.f("ix_agent_tool_calls_agent"), "agent_tool_calls", ["agent"])
    op.create_index(
        op.f("ix_agent_tool_calls_investigation_id"), "agent_tool_calls", ["investigation_id"]
    )
    op.create_index(op.f("ix_agent_tool_calls_created_at"), "agent_tool_calls", ["created_at"])


def downgrade() -> None:
    op.drop_table("agent_tool_calls")
