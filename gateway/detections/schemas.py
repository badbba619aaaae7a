"""Wire models of the detection and hunt routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.db.base import INTEGER_MAX
from core.validation import UtcDatetime

MAX_RULE_BYTES = 256 * 1024


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: str = Field(min_length=1, max_length=MAX_RULE_BYTES)
    """The rule as Sigma YAML (a correlation rule may carry the rules it correlates)."""
    enabled: bool = False
    interval_seconds: int = Field(default=300, ge=60, le=86_400)
    lookback_seconds: int | None = Field(default=None, ge=60, le=30 * 86_400)
    """The window each scheduled run searches (default: the interval plus a minute, so late
    events are still seen; an event is never raised twice)."""


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: str | None = Field(default=None, min_length=1, max_length=MAX_RULE_BYTES)
    enabled: bool | None = None
    interval_seconds: int | None = Field(default=None, ge=60, le=86_400)
    lookback_seconds: int | None = Field(default=None, ge=60, le=30 * 86_400)
    version: int | None = Field(default=None, ge=1)
    """The version you read: a stale one is AURORA-4090."""


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    sigma_id: str | None
    title: str
    description: str | None
    level: str | None
    severity: str
    status: str | None
    sigma: str
    condition: str
    correlation: dict[str, Any] | None
    techniques: list[str]
    tags: list[str]
    logsource: dict[str, Any]
    warnings: list[str]
    enabled: bool
    interval_seconds: int
    lookback_seconds: int
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class RuleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    technique: str | None = Field(default=None, max_length=16)
    level: str | None = Field(default=None, max_length=16)
    q: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=INTEGER_MAX)


class Page[T](BaseModel):
    items: list[T]
    total: int
    limit: int
    offset: int


class RunRequest(BaseModel):
    """Run a rule over ``[start, end)``: ``preview`` raises nothing, ``backfill`` raises alerts
    (never twice for one event)."""

    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime
    end: UtcDatetime
    mode: Literal["preview", "backfill"] = "preview"

    @model_validator(mode="after")
    def _window(self) -> RunRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).total_seconds() > 366 * 86_400:
            raise ValueError("a run covers at most a year")
        return self


class RunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    kind: str
    window_start: datetime
    window_end: datetime
    status: str
    matches: int
    alerts: int
    suppressed: int
    already_seen: int
    sample: list[dict[str, Any]]
    duration_ms: float | None
    error: str | None
    requested_by: str
    started_at: datetime
    finished_at: datetime | None


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=INTEGER_MAX)


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(min_length=1, max_length=20)
    """Field → value (ECS names such as ``host.name``, or an event's original field names):
    events having all of these values raise no alert."""
    reason: str = Field(min_length=1, max_length=2000)
    until: UtcDatetime | None = None
    duration_seconds: int | None = Field(default=None, ge=60, le=366 * 86_400)

    @model_validator(mode="after")
    def _bounded(self) -> SuppressionCreate:
        if (self.until is None) == (self.duration_seconds is None):
            raise ValueError("give exactly one of until and duration_seconds")
        for name, value in self.match.items():
            if not name or len(name) > 128 or len(value) > 4096:
                raise ValueError("field names up to 128 characters, values up to 4096")
        return self


class SuppressionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    match: dict[str, str]
    reason: str
    expires_at: datetime
    hits: int
    created_by: str
    created_at: datetime
    active: bool = False


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["true_positive", "false_positive", "benign"]
    comment: str | None = Field(default=None, max_length=4000)
    alert_id: str | None = Field(default=None, max_length=32)
    log_id: str | None = Field(default=None, max_length=36)


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    verdict: str
    comment: str | None
    alert_id: str | None
    log_id: str | None
    created_by: str
    created_at: datetime


class HuntCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    kind: Literal["query", "sigma"] = "query"
    query: str = Field(min_length=1, max_length=MAX_RULE_BYTES)
    """The search language (``kind: query``) or a Sigma rule (``kind: sigma``)."""
    lookback_seconds: int = Field(default=86_400, ge=60, le=366 * 86_400)


class HuntUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    kind: Literal["query", "sigma"] | None = None
    query: str | None = Field(default=None, min_length=1, max_length=MAX_RULE_BYTES)
    lookback_seconds: int | None = Field(default=None, ge=60, le=366 * 86_400)
    version: int | None = Field(default=None, ge=1)


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
    last_run: dict[str, Any] | None = None


class HuntRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: UtcDatetime | None = None
    end: UtcDatetime | None = None


class HuntRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    hunt_id: str
    window_start: datetime
    window_end: datetime
    status: str
    matches: int
    results: list[dict[str, Any]]
    duration_ms: float | None
    error: str | None
    requested_by: str
    started_at: datetime
    finished_at: datetime | None


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: list[str] = Field(min_length=1, max_length=20)
    """The event's fields the rule matches on (ECS names or original field names)."""
    title: str | None = Field(default=None, min_length=1, max_length=500)
    level: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    description: str | None = Field(default=None, max_length=20_000)
