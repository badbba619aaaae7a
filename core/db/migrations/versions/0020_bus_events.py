"""Bus events: what each gateway replica publishes, for the others to read (core.bridge).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bus_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bus_events")),
    )
    op.create_index(op.f("ix_bus_events_created_at"), "bus_events", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bus_events_created_at"), table_name="bus_events")
    op.drop_table("bus_events")
