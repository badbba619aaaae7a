"""Runtime knobs that operators change while the platform runs, and the system mode."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SystemMode(StrEnum):
    """What agents and playbooks may do: record only, propose, or execute."""

    DRY_RUN = "dry_run"
    MONITOR = "monitor"
    ACTIVE = "active"


class RuntimeConfig(BaseModel):
    """The runtime knobs with their defaults; a fresh install starts in ``dry_run``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SystemMode = SystemMode.DRY_RUN
    approval_timeout_seconds: Annotated[int, Field(ge=10, le=86_400)] = 300
    """How long a high-impact action waits for a human before it is refused."""
    max_concurrent_investigations: Annotated[int, Field(ge=1, le=64)] = 4
    alert_dedup_window_seconds: Annotated[int, Field(ge=0, le=604_800)] = 3600
    chat_rate_limit_per_minute: Annotated[int, Field(ge=1, le=600)] = 20
