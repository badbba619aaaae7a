"""Wire models of the orchestrator routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.db.base import INTEGER_MAX


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=64)
    method: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    investigation_id: str | None = Field(default=None, max_length=128)
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class DispatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agent: str
    method: str
    params: dict[str, Any]
    investigation_id: str | None
    status: str
    result: Any | None
    error: dict[str, Any] | None
    duration_ms: float
    actor: str
    created_at: datetime


class DispatchPage(BaseModel):
    items: list[DispatchRead]
    total: int
    limit: int
    offset: int


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(default=None, max_length=64)
    method: str | None = Field(default=None, max_length=128)
    status: Literal["ok", "error"] | None = None
    investigation_id: str | None = Field(default=None, max_length=128)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=INTEGER_MAX)


class IocIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)


Priority = Literal["low", "normal", "high", "urgent"]
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


class InvestigateRequest(BaseModel):
    """What to investigate: an alert, a case, indicators or free text (at least one)."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str | None = Field(default=None, max_length=32)
    case_id: str | None = Field(default=None, max_length=32)
    iocs: list[IocIn] = Field(default_factory=list, max_length=500)
    text: str | None = Field(default=None, max_length=100_000)
    command_lines: list[str] = Field(default_factory=list, max_length=200)
    hosts: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=50
    )
    """Hosts to scope in the logs (the hunter)."""
    users: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=50
    )
    """Accounts to scope in the logs (the hunter)."""
    priority: Priority = "normal"

    @model_validator(mode="after")
    def _something(self) -> InvestigateRequest:
        if not (
            self.alert_id
            or self.case_id
            or self.iocs
            or (self.text or "").strip()
            or self.command_lines
            or self.hosts
            or self.users
        ):
            raise ValueError(
                "give an alert_id, a case_id, iocs, text, command lines, hosts or users"
            )
        return self


class InvestigationAccepted(BaseModel):
    id: str
    status: str
    priority: str


class InvestigationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    priority: str
    alert_id: str | None
    case_id: str | None
    subject: dict[str, Any]
    requested_by: str
    attempts: int
    receipt: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class InvestigationSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    priority: str
    alert_id: str | None
    case_id: str | None
    requested_by: str
    created_at: datetime
    finished_at: datetime | None


class InvestigationPage(BaseModel):
    items: list[InvestigationSummary]
    total: int
    limit: int
    offset: int


class InvestigationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: (
        Literal["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"] | None
    ) = None
    priority: Priority | None = None
    alert_id: str | None = Field(default=None, max_length=32)
    case_id: str | None = Field(default=None, max_length=32)
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=INTEGER_MAX)
