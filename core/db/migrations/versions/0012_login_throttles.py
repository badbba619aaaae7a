"""Password checks are charged per username in their own table, before the hash is checked.

The lockout used to live in ``users.failed_logins`` and ``users.locked_until`` (read before the
check and written after it, so parallel guesses all got through) and, for unknown usernames,
in the memory of one gateway. Both columns stay for now, unused: dropping them would rebuild
the users table on SQLite.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("window_ends_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_throttles")),
    )
    op.create_index(
        op.f("ix_login_throttles_window_ends_at"), "login_throttles", ["window_ends_at"]
    )


def downgrade() -> None:
    op.drop_table("login_throttles")
