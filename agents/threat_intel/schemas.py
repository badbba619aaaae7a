"""Wire models of the threat_intel agent."""

from __future__ import annotations

from pydantic import Field, model_validator

from agents.runtime.specialist import AlertParams, IocIn


class AnalyzeThreatRequest(AlertParams):
    """``analyze_threat`` params, as in the API reference's example request."""

    iocs: list[IocIn] = Field(default_factory=list, max_length=500)
    context: str | None = Field(default=None, max_length=100_000)
    """Free text around the indicators (alert description, log lines, report excerpt)."""

    @model_validator(mode="after")
    def _something_to_analyse(self) -> AnalyzeThreatRequest:
        if not self.iocs and not (self.context and self.context.strip()):
            raise ValueError("give at least one indicator in 'iocs' or some 'context' text")
        return self
