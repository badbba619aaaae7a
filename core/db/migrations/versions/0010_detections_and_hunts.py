"""Detection rules, runs, hits, suppressions, feedback; hunts and their runs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detection_rules",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("sigma_id", sa.String(64), nullable=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("level", sa.String(16), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("sigma", sa.Text(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("correlation", sa.JSON(), nullable=True),
        sa.Column("techniques", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("logsource", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("lookback_seconds", sa.Integer(), nullable=False),
        sa.Column("next_run_at", TS, nullable=True),
        sa.Column("last_run_at", TS, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_rules")),
    )
    for column in ("sigma_id", "enabled", "next_run_at", "created_at"):
        op.create_index(op.f(f"ix_detection_rules_{column}"), "detection_rules", [column])
    op.create_table(
        "detection_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("already_seen", sa.Integer(), nullable=False),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_runs")),
    )
    for column in ("rule_id", "status", "started_at"):
        op.create_index(op.f(f"ix_detection_runs_{column}"), "detection_runs", [column])
    op.create_table(
        "detection_hits",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("log_id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_hits")),
        sa.UniqueConstraint("rule_id", "log_id", name="uq_detection_hits_rule_log"),
    )
    op.create_index(op.f("ix_detection_hits_alert_id"), "detection_hits", ["alert_id"])
    op.create_table(
        "detection_suppressions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_suppressions")),
    )
    op.create_index(
        "ix_detection_suppressions_rule_expires",
        "detection_suppressions",
        ["rule_id", "expires_at"],
    )
    op.create_table(
        "detection_feedback",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("comment", sa.String(4000), nullable=True),
        sa.Column("alert_id", sa.String(32), nullable=True),
        sa.Column("log_id", sa.String(36), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_feedback")),
    )
    for column in ("rule_id", "created_at"):
        op.create_index(op.f(f"ix_detection_feedback_{column}"), "detection_feedback", [column])
    op.create_table(
        "hunts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("lookback_seconds", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hunts")),
    )
    op.create_index(op.f("ix_hunts_created_at"), "hunts", ["created_at"])
    op.create_table(
        "hunt_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("hunt_id", sa.String(32), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hunt_runs")),
    )
    for column in ("hunt_id", "started_at"):
        op.create_index(op.f(f"ix_hunt_runs_{column}"), "hunt_runs", [column])


def downgrade() -> None:
    for table in (
        "hunt_runs",
        "hunts",
        "detection_feedback",
        "detection_suppressions",
        "detection_hits",
        "detection_runs",
        "detection_rules",
    ):
        op.drop_table(table)
