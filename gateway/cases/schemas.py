"""Wire models of the cases routes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from core.schemas import TAG, Limit, PageQuery, Severity, Tags, Version
from core.validation import UtcDatetime


class CaseStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


def _marking(prefix: str) -> BeforeValidator:
    """``amber``, ``tlp:amber`` and ``TLP:AMBER`` are one marking; anything else is left for
    the Literal to refuse."""

    def spelled(value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().upper()
            return text if text.startswith(f"{prefix}:") else f"{prefix}:{text}"
        return value

    return BeforeValidator(spelled)


Tlp = Annotated[
    Literal["TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED"],
    _marking("TLP"),
]
Pap = Annotated[Literal["PAP:CLEAR", "PAP:GREEN", "PAP:AMBER", "PAP:RED"], _marking("PAP")]
COMMENT_MAX_CHARS = 50_000
TIMELINE_LIMIT = 200
"""How many of the newest timeline entries ``GET /cases/{case_id}`` carries."""


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    severity: Severity = Severity.MEDIUM
    tlp: Tlp = "TLP:AMBER"
    pap: Pap = "PAP:AMBER"
    tags: Tags = Field(default_factory=list)
    assignee: str | None = Field(default=None, min_length=1, max_length=64)


class CaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    status: CaseStatus | None = None
    severity: Severity | None = None
    tlp: Tlp | None = None
    pap: Pap | None = None
    tags: Tags | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    version: Version | None = None


class CaseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    description: str | None
    status: str
    severity: str
    tlp: str
    pap: str
    tags: list[str]
    assignee: str | None
    created_by: str
    closed_at: datetime | None
    deleted_at: datetime | None
    deleted_by: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    target_id: str | None
    changes: dict[str, Any]
    """For an update, ``{field: {"old": ..., "new": ...}}``; otherwise what was added."""
    created_at: datetime


class LinkedAlert(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    severity: str
    status: str


class CaseDetail(CaseRead):
    timeline: list[TimelineEntry]
    """The newest :data:`TIMELINE_LIMIT` entries, newest first."""
    alerts: list[LinkedAlert]
    """The alerts promoted to or linked with this case."""


SORTABLE = ("created_at", "updated_at", "severity", "status", "title")


class CaseListQuery(PageQuery):
    status: CaseStatus | None = None
    severity: Severity | None = None
    assignee: str | None = Field(default=None, max_length=64)
    tag: str | None = Field(default=None, pattern=TAG.pattern)
    sort: str = Field(default="-created_at", pattern=r"^-?(" + "|".join(SORTABLE) + r")$")


class CaseItemsQuery(PageQuery):
    """A page of a case's observables, comments or tasks: 100 by default."""

    limit: Limit = 100


class ObservableCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=2048)
    ioc: bool = False
    sighted: bool = False
    description: str | None = Field(default=None, max_length=10_000)
    tags: Tags = Field(default_factory=list)
    on_duplicate: Literal["reject", "merge"] = "reject"
    """A repeat of an observable already on the case: AURORA-4090, or merged into it (flags
    OR-ed, tags united, a missing description filled in)."""


class SimilarCase(BaseModel):
    id: str
    title: str


class ObservableRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    type: str
    subtype: str | None
    value: str
    ioc: bool
    sighted: bool
    description: str | None
    tags: list[str]
    created_by: str
    created_at: datetime
    similar_cases: list[SimilarCase] = Field(default_factory=list)
    """The other live cases holding the same (type, value)."""


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=COMMENT_MAX_CHARS)
    """Markdown, stored as written; rendering and sanitising are the client's."""

    @field_validator("body")
    @classmethod
    def _not_blank(cls, body: str) -> str:
        if not body.strip():
            raise ValueError("a comment needs some text")
        return body


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    author: str
    body: str
    created_at: datetime


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    due_date: UtcDatetime | None = None


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=20_000)
    status: TaskStatus | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=64)
    due_date: UtcDatetime | None = None
    version: Version | None = None


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    title: str
    description: str | None
    status: str
    assignee: str | None
    due_date: datetime | None
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
