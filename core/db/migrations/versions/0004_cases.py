"""Cases, their observables, comments, tasks and audit timeline.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _case_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["case_id"], ["cases.id"], name=op.f(f"fk_{table}_case_id_cases")
    )


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("tlp", sa.String(20), nullable=False),
        sa.Column("pap", sa.String(16), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("deleted_by", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    for column in ("status", "severity", "assignee", "deleted_at", "created_at"):
        op.create_index(op.f(f"ix_cases_{column}"), "cases", [column])
    op.create_table(
        "case_observables",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("subtype", sa.String(16), nullable=True),
        sa.Column("value", sa.String(2048), nullable=False),
        sa.Column("ioc", sa.Boolean(), nullable=False),
        sa.Column("sighted", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _case_fk("case_observables"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_observables")),
        sa.UniqueConstraint("case_id", "type", "value", name="uq_case_observables_case_type_value"),
    )
    op.create_index("ix_case_observables_type_value", "case_observables", ["type", "value"])
    op.create_table(
        "case_comments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _case_fk("case_comments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_comments")),
    )
    op.create_index(
        "ix_case_comments_case_id_created_at", "case_comments", ["case_id", "created_at"]
    )
    op.create_table(
        "case_tasks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("due_date", TS, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _case_fk("case_tasks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_tasks")),
    )
    op.create_index("ix_case_tasks_case_id_created_at", "case_tasks", ["case_id", "created_at"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(36), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _case_fk("case_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index("ix_case_events_case_id_id", "case_events", ["case_id", "id"])


def downgrade() -> None:
    for table in ("case_events", "case_tasks", "case_comments", "case_observables", "cases"):
        op.drop_table(table)
