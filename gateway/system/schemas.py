"""Wire models of the system routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.runtime import RuntimeConfig, SystemMode


class RuntimeConfigUpdate(BaseModel):
    """A partial change of the runtime knobs; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    mode: SystemMode | None = None
    approval_timeout_seconds: Annotated[int, Field(ge=10, le=86_400)] | None = None
    max_concurrent_investigations: Annotated[int, Field(ge=1, le=64)] | None = None
    alert_dedup_window_seconds: Annotated[int, Field(ge=0, le=604_800)] | None = None
    chat_rate_limit_per_minute: Annotated[int, Field(ge=1, le=600)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> RuntimeConfigUpdate:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one setting to change")
        return self


class RuntimeSettingChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    changed_at: datetime
    changed_by: str
    changes: dict[str, Any]


class RuntimeSettingsRead(BaseModel):
    settings: RuntimeConfig
    updated_at: datetime | None
    updated_by: str | None
    history: list[RuntimeSettingChangeRead]
