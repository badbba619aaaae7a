"""Wire models of the evidence routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.schemas import Limit, PageQuery


class EvidenceCreate(BaseModel):
    """JSON form of an upload: the content base64-encoded (multipart takes a ``file`` part)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")
    content_base64: str = Field(min_length=1)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    description: str | None = Field(default=None, max_length=10_000)
    reason: str = Field(default="collected", min_length=1, max_length=2000)


class EvidenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    name: str
    description: str | None
    content_type: str
    sha256: str
    size: int
    created_by: str
    created_at: datetime
    ledger_length: int
    purged_at: datetime | None


class EvidenceListQuery(PageQuery):
    """A page of a case's evidence: 500 by default (the list was whole before it had pages)."""

    limit: Limit = 500


class CustodyEvent(BaseModel):
    sequence: int
    action: str
    actor: str
    at: str
    reason: str
    details: dict[str, Any]


class Custody(BaseModel):
    evidence_id: str
    events: list[CustodyEvent]


class LedgerEntryRead(CustodyEvent):
    evidence_sha256: str
    previous_hash: str
    hash: str
    key_id: str | None
    """The ledger key that sealed the entry; None for a legacy (plain SHA-256) entry."""


class LedgerVerification(BaseModel):
    valid: bool
    entries: int
    expected_entries: int
    head: str
    broken_at: int | None
    reason: str | None
    blob_intact: bool | None
    """Whether the stored bytes still hash to the evidence digest (None once purged)."""
    legacy_entries: int
    """Entries written before the ledger was keyed (plain SHA-256), sealed by a keyed entry."""


class Ledger(BaseModel):
    evidence_id: str
    sha256: str
    entries: list[LedgerEntryRead]
    verification: LedgerVerification
