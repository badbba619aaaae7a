"""Wire models of the detection routes (rules, runs, suppressions, feedback, metrics) and of
drafting a rule from a log event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.db.base import utcnow
from core.schemas import PageQuery, Severity, Version
from core.validation import UtcDatetime
from gateway.siem.schemas import SearchRunRead

MAX_RULE_BYTES = 256 * 1024
SigmaText = Annotated[str, Field(min_length=1, max_length=MAX_RULE_BYTES)]
IntervalSeconds = Annotated[int, Field(ge=60, le=86_400)]
LookbackSeconds = Annotated[int, Field(ge=60, le=30 * 86_400)]


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: SigmaText
    """The rule as Sigma YAML (a correlation rule may carry the rules it correlates)."""
    enabled: bool = False
    interval_seconds: IntervalSeconds = 300
    lookback_seconds: LookbackSeconds | None = None
    """The window each scheduled run searches (default: the interval plus a minute, so late
    events are still seen; an event is never raised twice)."""


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sigma: SigmaText | None = None
    enabled: bool | None = None
    interval_seconds: IntervalSeconds | None = None
    lookback_seconds: LookbackSeconds | None = None
    version: Version | None = None


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    sigma_id: str | None
    title: str
    description: str | None
    level: str | None
    severity: Severity
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


class RuleQuery(PageQuery):
    enabled: bool | None = None
    technique: str | None = Field(default=None, max_length=16)
    level: str | None = Field(default=None, max_length=16)
    q: str | None = Field(default=None, max_length=200)


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


class RunRead(SearchRunRead):
    rule_id: str
    kind: str
    alerts: int
    suppressed: int
    already_seen: int
    sample: list[dict[str, Any]]


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
    """Whether it still suppresses (it has not expired): set when read."""

    @model_validator(mode="after")
    def _active(self) -> SuppressionRead:
        self.active = self.expires_at > utcnow()
        return self


Verdict = Literal["true_positive", "false_positive", "benign"]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
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


class PromoteRequest(BaseModel):
    """Draft a Sigma rule matching chosen fields of one log event."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] = Field(min_length=1, max_length=20)
    """The event's fields the rule matches on (ECS names or original field names)."""
    title: str | None = Field(default=None, min_length=1, max_length=500)
    level: Severity = Severity.MEDIUM
    description: str | None = Field(default=None, max_length=20_000)


# -- metrics ----------------------------------------------------------------------------------


class FeedbackCounts(BaseModel):
    true_positive: int
    false_positive: int
    benign: int


class RuleMetrics(BaseModel):
    """One rule's record: its runs, what they matched and raised, analysts' verdicts."""

    rule_id: str
    title: str
    enabled: bool
    runs: int
    failed_runs: int
    matches: int
    alerts: int
    suppressed: int
    feedback: FeedbackCounts
    precision: float | None
    """True positives over true and false positives (None before any such verdict)."""
    mean_duration_ms: float | None
    last_error: str | None
    last_run_at: datetime | None
    techniques: list[str]


class MetricsTotals(BaseModel):
    rules: int
    enabled: int
    runs: int
    alerts: int


class AttackCoverage(BaseModel):
    techniques: list[str]
    """The ATT&CK techniques the enabled rules detect, sorted."""
    count: int


class DetectionMetrics(BaseModel):
    rules: list[RuleMetrics]
    totals: MetricsTotals
    attack_coverage: AttackCoverage
