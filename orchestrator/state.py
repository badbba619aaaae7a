"""The state of one investigation as it flows through the graph, with its reducers.

The state holds models: the subject (:class:`agents.catalog.Subject`), indicators, the
specialists' findings (validated into :class:`agents.acp.finding.Finding` where they enter the
graph), failures and errors. They go through the checkpointer as they are: LangGraph's strict
serializer is allowed exactly the models named here, which it reads from these annotations.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from agents.acp.finding import Finding, FindingIoc
from agents.catalog import Subject
from core.llm.types import Message


def merge_iocs(known: list[FindingIoc], new: list[FindingIoc]) -> list[FindingIoc]:
    """Union of indicators by (type, value), first seen first."""
    seen = {(i.type, i.value) for i in known}
    merged = list(known)
    for ioc in new:
        key = (ioc.type, ioc.value)
        if key not in seen:
            seen.add(key)
            merged.append(ioc)
    return merged


type Stage = Literal["intake", "plan", "dispatch", "finding", "correlate", "respond", "execute"]
"""Where in the graph an error was caught: an indicator left out at intake, planning (the LLM),
a specialist's call, its reply (not a valid finding), the second round's planning, the
responder, an action's execution."""


class StepError(BaseModel):
    """A caught error as the receipt records it: who, where, what type, and a message safe to
    show (never a traceback; the log has that)."""

    agent: str
    stage: Stage
    error: str
    """The exception's type name."""
    message: str


class Failure(BaseModel):
    """A specialist that gave no finding: its call failed, or its reply was not a finding."""

    agent: str
    round: int
    """The round it was dispatched in; -1 for the responder."""
    reason: str
    stage: Stage
    error: str
    tool_call_id: str | None = None
    """The LLM planner's call this answers (None with the built-in planner)."""

    def receipt(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Received(Finding):
    """A finding as it enters the graph. Validated with ``context={"agent": name}``, it must
    be that agent's."""

    @model_validator(mode="after")
    def _from_the_agent_called(self, info: ValidationInfo) -> Received:
        called = (info.context or {}).get("agent")
        if called is not None and self.agent != called:
            raise ValueError(f"the finding is from {self.agent!r}, not {called!r}")
        return self


class AgentFinding(Received):
    """A specialist's finding as it entered the graph: validated, with the round it answered
    and how long the call took."""

    round: int
    latency_ms: float = Field(ge=0)
    tool_call_id: str | None = None

    def receipt(self) -> dict[str, Any]:
        """As the receipt shows it: the finding, its round and latency, and the LLM planner's
        call it answers when there is one."""
        shown = self.model_dump(mode="json")
        if shown["tool_call_id"] is None:
            del shown["tool_call_id"]
        return shown


class ResponsePlan(Received):
    """The responder's plan (a finding of its own), with how long it took."""

    latency_ms: float = Field(ge=0)


def received[F: Received](model: type[F], agent: str, reply: Any, **annotations: Any) -> F:
    """``agent``'s ``reply`` validated into ``model`` with the graph's ``annotations`` (round,
    latency) added; pydantic's ValidationError when it is not a finding of that agent."""
    data = {**reply, **annotations} if isinstance(reply, dict) else reply
    return model.model_validate(data, context={"agent": agent})


class PlannerInfo(TypedDict):
    """Who planned: the built-in rules or the model (its name and prompt version), and why the
    rules planned when the model was wanted."""

    kind: Required[Literal["builtin", "llm"]]
    model: NotRequired[str]
    prompt_version: NotRequired[str]
    fallback: NotRequired[str]


class AgentCall(TypedDict):
    """The payload of one parallel branch (LangGraph ``Send``)."""

    agent: str
    method: str
    params: dict[str, Any]
    investigation_id: str
    round: int
    tool_call_id: str | None
    """The LLM planner's call this answers (None with the built-in planner)."""


class InvestigationInput(TypedDict, total=False):
    """What a run starts with (the gateway's snapshot of the subject, as stored)."""

    investigation_id: str
    subject: dict[str, Any]
    mode: str


class InvestigationState(TypedDict, total=False):
    """What the nodes share. Lists with a reducer are appended to by parallel branches."""

    investigation_id: str
    subject: Subject
    """What to investigate, its indicators normalised at intake (the ones it started with)."""
    mode: str
    iocs: Annotated[list[FindingIoc], merge_iocs]
    """Every indicator so far: the subject's, then those the specialists found."""
    round: int
    calls: list[AgentCall]
    """The calls of the current round (dispatched in parallel)."""
    planner: PlannerInfo
    messages: Annotated[list[Message], operator.add]
    """The LLM planner's transcript (OpenAI chat format); empty with the built-in planner."""
    tokens: Annotated[int, operator.add]
    """LLM tokens the planner spent."""
    findings: Annotated[list[AgentFinding], operator.add]
    corroborations: Annotated[list[dict[str, Any]], operator.add]
    """What the specialists' own sources confirm, kept only from the agent whose role it is
    (:func:`agents.acp.provenance.vouched`), each with that agent."""
    failures: Annotated[list[Failure], operator.add]
    errors: Annotated[list[StepError], operator.add]
    """Every error a node caught, in the order caught."""
    timeline: Annotated[list[dict[str, Any]], operator.add]
    response: ResponsePlan | None
    actions: list[dict[str, Any]]
    """The response plan's actions with the gateway's guardrail decision, approval and
    execution each (see :mod:`orchestrator.actions`)."""
    report: dict[str, Any] | None
