"""Evidence items and their ledger (which is also their custody chain)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class EvidenceItem(Base):
    """A piece of evidence: its blob (by SHA-256) and where its ledger's chain ends."""

    __tablename__ = "evidence_items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ledger_length: Mapped[int] = mapped_column(default=0)
    ledger_head: Mapped[str] = mapped_column(String(64))
    purged_at: Mapped[datetime | None]
    purged_by: Mapped[str | None] = mapped_column(String(64))


class EvidenceLedgerEntry(Base):
    """One custody event, chained to the one before it with a ledger key (see ``core.ledger``)."""

    __tablename__ = "evidence_ledger"
    __table_args__ = (UniqueConstraint("evidence_id", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id"), index=True)
    sequence: Mapped[int]
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[str] = mapped_column(String(32))
    """ISO 8601 UTC with microseconds, as hashed (a string, so no database reformats it)."""
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(64))
    """The ledger key that sealed ``hash``; None for a legacy (plain SHA-256) entry."""
