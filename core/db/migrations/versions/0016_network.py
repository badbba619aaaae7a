"""Network security: configuration versions, attacks, findings and detector state.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "network_config_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_config_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_network_config_versions_version")),
    )
    op.create_index(
        op.f("ix_network_config_versions_changed_at"), "network_config_versions", ["changed_at"]
    )
    op.create_table(
        "network_attacks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("techniques", sa.JSON(), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("destination_ips", sa.JSON(), nullable=False),
        sa.Column("destination_ports", sa.JSON(), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("detections", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("case_id", sa.String(32), nullable=True),
        sa.Column("responses", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_attacks")),
    )
    for column in ("detector", "severity", "status", "source_ip", "last_seen", "created_at"):
        op.create_index(op.f(f"ix_network_attacks_{column}"), "network_attacks", [column])
    op.create_index("ix_network_attacks_key_last_seen", "network_attacks", ["key", "last_seen"])
    op.create_table(
        "network_findings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("window_start", TS, nullable=True),
        sa.Column("window_end", TS, nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("attack_id", sa.String(32), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("techniques", sa.JSON(), nullable=False),
        sa.Column("finding", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_findings")),
    )
    for column in ("status", "created_at", "attack_id", "severity"):
        op.create_index(op.f(f"ix_network_findings_{column}"), "network_findings", [column])
    op.create_table(
        "network_detector_state",
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("last_started_at", TS, nullable=True),
        sa.Column("last_window_end", TS, nullable=True),
        sa.Column("last_duration_ms", sa.Float(), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_candidates", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("attacks_opened", sa.Integer(), nullable=False),
        sa.Column("attacks_updated", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("detector", name=op.f("pk_network_detector_state")),
    )


def downgrade() -> None:
    op.drop_table("network_detector_state")
    op.drop_table("network_findings")
    op.drop_table("network_attacks")
    op.drop_table("network_config_versions")
