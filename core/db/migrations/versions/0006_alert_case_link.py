"""Alerts remember the case they were promoted to or linked with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("case_id", sa.String(32), nullable=True))
        batch.create_index(batch.f("ix_alerts_case_id"), ["case_id"])
        batch.create_foreign_key(batch.f("fk_alerts_case_id_cases"), "cases", ["case_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(batch.f("fk_alerts_case_id_cases"), type_="foreignkey")
        batch.drop_index(batch.f("ix_alerts_case_id"))
        batch.drop_column("case_id")
