"""The evidence ledger is keyed: each entry names the ledger key that sealed it.

Entries written before have no key id (legacy, plain SHA-256); the gateway seals each legacy
ledger once with the key at its first start (see ``gateway.cases.evidence.service``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence_ledger") as batch:
        batch.add_column(sa.Column("key_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence_ledger") as batch:
        batch.drop_column("key_id")
