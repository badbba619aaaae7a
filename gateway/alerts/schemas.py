"""Wire models of the alerts routes."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.schemas import TAG, PageQuery, Severity, Tags, Version
from core.validation import MAX_JSON_DEPTH, UtcDatetime, bounded_json, json_depth

log = logging.getLogger("aurora.alerts")


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"
    DUPLICATE = "duplicate"


CLOSED = frozenset({AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE, AlertStatus.DUPLICATE})

RAW_MAX_BYTES = 256 * 1024
"""The most an alert's ``raw`` may hold, as JSON: the original event and its context, with room
for the longest command lines, but not a log file."""
Raw = Annotated[dict[str, Any], AfterValidator(bounded_json(max_bytes=RAW_MAX_BYTES))]
OMITTED = "_omitted"
"""The one key of what a response shows in place of a stored free-form value it cannot carry."""


def shown_json(value: Any, info: ValidationInfo) -> Any:
    """A stored free-form value as a response can carry it. One nested past the limit (written
    before there was one) cannot be serialised: it is shown as ``{"_omitted": reason}`` and
    logged, so one such row never takes a listing down. The stored value is left as it is."""
    if value is not None and json_depth(value, stop_at=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        reason = f"nested more than {MAX_JSON_DEPTH} levels deep; not shown"
        log.warning("%s of %s: %s", info.field_name, info.data.get("id"), reason)
        return {OMITTED: reason}
    return value


class Entity(BaseModel):
    """A key entity of an alert (an indicator, a host, a user), normalised on the way in."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=2048)


class AlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    severity: Severity = Severity.MEDIUM
    source: str = Field(min_length=1, max_length=100)
    rule_id: str | None = Field(default=None, max_length=200)
    tags: Tags = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list, max_length=200)
    raw: Raw | None = None
    observed_at: UtcDatetime | None = None
    """When the activity happened; defaults to now."""
    assignee: str | None = Field(default=None, max_length=64)
    on_duplicate: Literal["reject", "merge"] = "reject"
    """What to do when an open alert with the same fingerprint exists within the window."""


class AlertUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AlertStatus | None = None
    severity: Severity | None = None
    assignee: str | None = Field(default=None, max_length=64)
    tags: Tags | None = None
    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    version: Version | None = None


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    description: str | None
    severity: str
    status: str
    source: str
    rule_id: str | None
    assignee: str | None
    case_id: str | None
    tags: list[str]
    entities: list[dict[str, Any]]
    raw: dict[str, Any] | None
    fingerprint: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    created_by: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime

    _raw = field_validator("raw", mode="before")(shown_json)


class AlertPromote(BaseModel):
    """Overrides for the case a promotion opens; by default it takes the alert's own."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    severity: Severity | None = None
    tlp: str | None = None
    pap: str | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=64)


class AlertCaseLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1, max_length=32)


class AlertPromoted(BaseModel):
    alert: AlertRead
    case_id: str
    observables_added: int
    observables_skipped: list[str]


SORTABLE = ("created_at", "last_seen", "severity", "status", "occurrences", "title")


class AlertListQuery(PageQuery):
    status: AlertStatus | None = None
    severity: Severity | None = None
    source: str | None = Field(default=None, max_length=100)
    rule_id: str | None = Field(default=None, max_length=200)
    assignee: str | None = Field(default=None, max_length=64)
    tag: str | None = Field(default=None, pattern=TAG.pattern)
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    sort: str = Field(default="-created_at", pattern=r"^-?(" + "|".join(SORTABLE) + r")$")
