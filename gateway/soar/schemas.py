"""Wire models of the SOAR routes: playbooks, their executions and step logs.

Automation rules' wire models live beside their service, in :mod:`gateway.soar.rules`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.schemas import PageQuery
from core.validation import UtcDatetime

ExecutionStatus = Literal[
    "queued", "running", "awaiting_approval", "completed", "failed", "cancelled"
]


class PlaybookQuery(PageQuery):
    enabled: bool | None = None
    builtin: bool | None = None
    search: str | None = Field(default=None, min_length=1, max_length=200)
    """Case-insensitive text in the id, name or description."""


class PlaybookSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    enabled: bool
    version: int
    builtin: bool
    steps: int = 0
    inputs: dict[str, Any] = Field(default_factory=dict)
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    media: str
    created_by: str
    created_at: datetime


class PlaybookRead(PlaybookSummary):
    """A playbook with its newest definition and its version history."""

    definition: dict[str, Any]
    versions: list[VersionRead] = Field(default_factory=list)
    executions: dict[str, int] = Field(default_factory=dict)
    """How many of its executions are in each status."""


class PlaybookToggle(BaseModel):
    """``enabled`` sets the state; without it the state flips."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    """The playbook's inputs (its definition says which: ``alert_id`` for most)."""


class StepRead(BaseModel):
    """One step (one loop item) of an execution: what went in, came out, and how long."""

    model_config = ConfigDict(from_attributes=True)

    key: str
    step_id: str
    position: int
    item: int | None
    uses: str
    status: str
    inputs: Any
    output: Any
    error: dict[str, Any] | None
    guardrail: dict[str, Any] | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None


class ExecutionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    playbook_id: str
    playbook_version: int
    status: str
    mode: str
    inputs: dict[str, Any]
    trigger: dict[str, Any]
    depth: int
    requested_by: str
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepRead] = Field(default_factory=list)


class ExecutionAccepted(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    playbook_id: str
    playbook_version: int
    status: str
    mode: str


class ExecutionQuery(PageQuery):
    playbook_id: str | None = Field(default=None, max_length=64)
    status: ExecutionStatus | None = None
    since: UtcDatetime | None = None
    """Queued at or after."""
    until: UtcDatetime | None = None
    """Queued before."""
