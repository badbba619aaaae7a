"""EDR: the endpoint inventory and the EDR actions.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "edr_endpoints",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("fqdn", sa.String(255), nullable=True),
        sa.Column("ips", sa.JSON(), nullable=False),
        sa.Column("os", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("connector", sa.String(64), nullable=True),
        sa.Column("native_id", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("logs_last_seen", TS, nullable=True),
        sa.Column("log_events", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edr_endpoints")),
        sa.UniqueConstraint("hostname", name=op.f("uq_edr_endpoints_hostname")),
        sa.UniqueConstraint("connector", "native_id", name="uq_edr_endpoints_connector_native"),
    )
    for column in ("state", "source", "connector", "last_seen"):
        op.create_index(op.f(f"ix_edr_endpoints_{column}"), "edr_endpoints", [column])
    op.create_table(
        "edr_actions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("endpoint_id", sa.String(32), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("connector", sa.String(64), nullable=True),
        sa.Column("native_action_id", sa.String(128), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("guardrail", sa.JSON(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edr_actions")),
        sa.UniqueConstraint("key", name=op.f("uq_edr_actions_key")),
    )
    for column in ("endpoint_id", "status", "connector", "created_at"):
        op.create_index(op.f(f"ix_edr_actions_{column}"), "edr_actions", [column])


def downgrade() -> None:
    op.drop_table("edr_actions")
    op.drop_table("edr_endpoints")
