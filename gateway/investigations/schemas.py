"""Wire models of the orchestrator routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
    offset: int = Field(default=0, ge=0)
