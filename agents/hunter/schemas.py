"""Wire models of the hunter agent."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from agents.runtime.specialist import IocIn


class HuntThreatsRequest(BaseModel):
    """``hunt_threats`` params: what to look for in the logs, and where."""

    model_config = ConfigDict(extra="forbid")

    iocs: list[IocIn] = Field(default_factory=list, max_length=100)
    hosts: list[str] = Field(default_factory=list, max_length=50)
    """Hosts to scope: what else happened there."""
    users: list[str] = Field(default_factory=list, max_length=50)
    """Accounts to scope: where else they were active."""
    hypothesis: str | None = Field(default=None, max_length=4000)
    context: str | None = Field(default=None, max_length=20_000)
    start: AwareDatetime | None = None
    """Default: ``end`` minus seven days."""
    end: AwareDatetime | None = None
    """Default: now."""

    @model_validator(mode="after")
    def _something(self) -> HuntThreatsRequest:
        if not (self.iocs or self.hosts or self.users):
            raise ValueError("give iocs, hosts or users to hunt for")
        for name in [*self.hosts, *self.users]:
            if not name.strip() or len(name) > 255:
                raise ValueError("host and user names are 1 to 255 characters")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self
