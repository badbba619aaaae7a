"""Wire models of the SIEM routes: ingest, search, sources, statistics, hunts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.logstore.query import MAX_QUERY_LENGTH
from core.validation import UtcDatetime

Format = Literal["windows", "zeek", "suricata", "netflow", "syslog", "cef", "json"]


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


class SourceRead(BaseModel):
    """One source of events, as the log store counts it."""

    source: str
    formats: list[str]
    events: int
    first_event_at: str | None
    last_event_at: str | None
    last_ingested_at: str | None


class SourcesResult(BaseModel):
    items: list[SourceRead]


class StatsWindow(BaseModel):
    start: str | None
    end: str | None
    bucket_seconds: int


class SourceCount(BaseModel):
    source: str
    events: int


class BucketCount(BaseModel):
    at: str | None
    events: int


class IngestRate(BaseModel):
    last_minute_per_second: float
    last_hour_per_second: float


class Storage(BaseModel):
    rows: int
    bytes_on_disk: int
    bytes_uncompressed: int
    parts: int
    merges_running: int
    retention_days: int


class StatsResult(BaseModel):
    """Events by source and over time in a window, ingest rates, storage."""

    window: StatsWindow
    events_total: int
    events_in_window: int
    by_source: list[SourceCount]
    over_time: list[BucketCount]
    ingest_rate: IngestRate
    storage: Storage


def window(
    start: datetime | None, end: datetime | None, *, default_hours: int = 24
) -> tuple[datetime, datetime]:
    """The window a query names, by default the last ``default_hours`` up to now."""
    end = end or datetime.now(UTC)
    return (start or end - timedelta(hours=default_hours)), end


# -- hunts ------------------------------------------------------------------------------------

MAX_HUNT_BYTES = 256 * 1024
HuntText = Annotated[str, Field(min_length=1, max_length=MAX_HUNT_BYTES)]
"""The search language (``kind: query``) or a Sigma rule (``kind: sigma``)."""
HuntKind = Literal["query", "sigma"]
HuntName = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=20_000)]
HuntLookback = Annotated[int, Field(ge=60, le=366 * 86_400)]


class HuntCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: HuntName
    description: Description | None = None
    kind: HuntKind = "query"
    query: HuntText
    lookback_seconds: HuntLookback = 86_400


class HuntUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: HuntName | None = None
    description: Description | None = None
    kind: HuntKind | None = None
    query: HuntText | None = None
    lookback_seconds: HuntLookback | None = None
    version: int | None = Field(default=None, ge=1)
    """The version you read: a stale one is AURORA-4090."""


class HuntLastRun(BaseModel):
    """The newest run of a hunt, in brief."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    matches: int
    started_at: datetime


class HuntRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    kind: str
    query: str
    lookback_seconds: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int
    last_run: HuntLastRun | None = None


class HuntRunRequest(BaseModel):
    """Run a hunt over ``[start, end)``: by default its lookback up to now."""

    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime | None = None
    end: UtcDatetime | None = None


class SearchRunRead(BaseModel):
    """What every run of a search over the logs reports (a hunt's, a detection rule's): its
    window, its outcome, its cost."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    window_start: datetime
    window_end: datetime
    status: str
    matches: int
    duration_ms: float | None
    error: str | None
    requested_by: str
    started_at: datetime
    finished_at: datetime | None


class HuntRunRead(SearchRunRead):
    hunt_id: str
    results: list[dict[str, Any]]
    """The first matching events (at most 500)."""
