"""Single sign-on tables: sign-ins under way, the identities users sign in with, and the SAML
assertions already used."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class SsoRequest(Base):
    """A sign-in sent to a provider and not back yet: what its answer must match. Used once
    (deleted as it is read), whichever replica the answer reaches."""

    __tablename__ = "sso_requests"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The OIDC ``state`` or the SAML ``RelayState``."""
    provider: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str | None] = mapped_column(String(64))
    code_verifier: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(128))
    """The SAML AuthnRequest's ID (the response's ``InResponseTo``)."""
    redirect_to: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UserIdentity(Base):
    """A provider's account (its subject) and the AuroraSOC user it signs in as."""

    __tablename__ = "user_identities"

    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    groups: Mapped[list[Any]] = mapped_column(JSON)
    """The groups it had at its last sign-in (what its role came from)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime] = mapped_column(default=utcnow)


class SeenAssertion(Base):
    """A SAML assertion already used to sign in, kept until it would have expired: the same
    assertion posted again is a replay."""

    __tablename__ = "saml_assertions_seen"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    """``provider:assertion ID``."""
    expires_at: Mapped[datetime] = mapped_column(index=True)
