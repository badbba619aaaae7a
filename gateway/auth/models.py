"""API keys, revoked access tokens, and the password checks charged to each username."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_id, utcnow


class ApiKey(Base):
    """A long-lived credential of a user, limited to a subset of the owner's permissions."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class RevokedToken(Base):
    """The ``jti`` of a JWT refused from now on, kept until the token would have expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LoginThrottle(Base):
    """Password checks charged to one username, whether an account has it or not, so that the
    lockout reveals nothing about which accounts exist.

    A check is charged before its hash is computed; at ``checks`` equal to the limit the name is
    locked until ``window_ends_at``. The window ends that long after the latest charge, which
    forgets what came before; a correct password deletes the row unless another check was
    charged after its own.
    """

    __tablename__ = "login_throttles"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    checks: Mapped[int]
    window_ends_at: Mapped[datetime] = mapped_column(index=True)
