"""What the graph's nodes depend on, given to each run as LangGraph's runtime context
(``graph.ainvoke(input, config, context=GraphContext(...))``; nodes read ``runtime.context``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.acp.client import CallOptions
from core.guardrails import GuardrailPolicy, default_policy
from core.llm.backend import LLMBackend
from orchestrator.actions import ActionExecutor
from orchestrator.planner import PlannerTools
from tools.attack import AttackKB


class Caller(Protocol):
    """Calls a specialist's method (:class:`agents.acp.client.HandoffClient` in the platform)."""

    async def call(
        self,
        agent: str,
        method: str,
        params: dict[str, Any] | None = None,
        options: CallOptions | None = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class GraphContext:
    client: Caller
    available: frozenset[str]
    """The specialists the registry knows; the plan never names others."""
    call_timeout: float = 60.0
    policy: GuardrailPolicy = field(default_factory=default_policy)
    executor: ActionExecutor | None = None
    """Carries out approved actions; None: nothing is ever executed (reported ``failed``)."""
    llm: LLMBackend | None = None
    """The planner's model; None: rule-based planning."""
    planner_tools: PlannerTools | None = None
    attack: Callable[[], AttackKB] | None = None
    """The ATT&CK knowledge base the receipt maps the subject's text with (called when first
    needed); None: the receipt's ``text_techniques`` stays empty."""

    @property
    def llm_planner(self) -> tuple[LLMBackend, PlannerTools] | None:
        """The model and its tools when the LLM plans, else None."""
        if self.llm is None or self.planner_tools is None:
            return None
        return self.llm, self.planner_tools
