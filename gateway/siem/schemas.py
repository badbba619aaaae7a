"""Wire models of the SIEM routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.logstore.query import MAX_QUERY_LENGTH
from core.validation import UtcDatetime

Format = Literal["windows", "zeek", "suricata", "syslog", "cef", "json"]


class IngestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.\-:]+$")
    """A label for where the events come from (default: the parser's name)."""
    format: Format | None = None
    """Skip detection and parse every event as this format."""


class Rejection(BaseModel):
    line: int | None
    """1-based line of the body where the item starts (None for EVTX records)."""
    index: int | None
    """0-based position in its JSON array or EVTX file (None for lines)."""
    reason: str
    excerpt: str | None = None


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    rejections: list[Rejection]
    """The first 1,000 rejections (``rejected`` counts them all)."""
    ids: list[str]
    """Ids of the stored events, in order (only when 1,000 or fewer were accepted)."""
    formats: dict[str, int]
    took_ms: float


def _after_start(end: datetime | None, info: ValidationInfo) -> datetime | None:
    start = info.data.get("start")
    if end is not None and start is not None and end <= start:
        raise ValueError("end must be after start")
    return end


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=MAX_QUERY_LENGTH)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    source: str | None = Field(default=None, max_length=64)
    format: str | None = Field(default=None, max_length=16)
    host: str | None = Field(default=None, max_length=255)
    sort: Literal["timestamp", "-timestamp"] = "-timestamp"
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=200)

    _window = field_validator("end")(_after_start)


class SearchResult(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None
    took_ms: float


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime | None = None
    end: UtcDatetime | None = None

    _window = field_validator("end")(_after_start)


class SourcesResult(BaseModel):
    items: list[dict[str, Any]]


def window(
    start: datetime | None, end: datetime | None, *, default_hours: int = 24
) -> tuple[datetime, datetime]:
    """The window a query names, by default the last ``default_hours`` up to now."""
    end = end or datetime.now(UTC)
    return (start or end - timedelta(hours=default_hours)), end
